"""The progress bar: silent off a terminal, under -q and for the first second; then drawn
on stderr with a total and a rate once the total is known."""

from __future__ import annotations

import io

import pytest
from qeguard.cli.console import Console
from qeguard.cli.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_silent_when_not_a_tty() -> None:
    stream = io.StringIO()
    clock = _Clock()
    p = Progress(stream=stream, clock=clock)
    p.start(10)
    clock.now = 5
    p.advance(5)
    p.finish()
    assert stream.getvalue() == ""


def test_hidden_during_the_first_second_then_drawn_with_rate_and_cleared() -> None:
    stream = _Tty()
    clock = _Clock()
    with Progress("hashing", stream=stream, clock=clock) as p:
        p.start(200)
        clock.now = 0.5
        p.advance(50)
        assert stream.getvalue() == ""
        clock.now = 2.0
        p.advance(50)
        bar = "#" * 15 + "-" * 15
        assert stream.getvalue().endswith(f"hashing [{bar}] 100/200  50% 50 files/s")
    assert stream.getvalue().endswith("\r\x1b[2K")


def test_total_learned_late_is_shown_once_known() -> None:
    clock = _Clock()
    p = Progress("verifying", enabled=False, clock=clock)
    p.start(0)
    clock.now = 2.0
    p(300)  # the verifier calls the bar itself as files are hashed
    assert p.line() == "verifying 300 files 150 files/s"
    p.expect(1200)
    assert p.line().startswith("verifying [") and "300/1200  25% 150 files/s" in p.line()


def test_console_progress_is_off_under_quiet_and_on_dumb_terminals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Console(_Tty(), _Tty(), quiet=True).progress("x").enabled is False
    assert Console(_Tty(), _Tty()).progress("x").enabled is True
    monkeypatch.setenv("TERM", "dumb")
    assert Console(_Tty(), _Tty()).progress("x").enabled is False


def test_colour_only_on_a_real_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert Console(_Tty(), _Tty()).color is True
    assert Console(io.StringIO(), _Tty()).color is False
    monkeypatch.setenv("TERM", "dumb")
    assert Console(_Tty(), _Tty()).color is False
    monkeypatch.setenv("FORCE_COLOR", "1")  # asked for explicitly: honoured
    assert Console(_Tty(), _Tty()).color is True
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("NO_COLOR", "1")
    assert Console(_Tty(), _Tty()).color is False
