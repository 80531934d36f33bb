"""The progress bar: silent off a terminal and for the first second, then drawn on stderr."""

from __future__ import annotations

import io

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


def test_hidden_during_the_first_second_then_drawn_and_cleared() -> None:
    stream = _Tty()
    clock = _Clock()
    with Progress("hashing", stream=stream, clock=clock) as p:
        p.start(200)
        clock.now = 0.5
        p.advance(50)
        assert stream.getvalue() == ""
        clock.now = 1.5
        p.advance(50)
        assert stream.getvalue().endswith("hashing [" + "#" * 15 + "-" * 15 + "] 100/200  50%")
    assert stream.getvalue().endswith("\r\x1b[2K")


def test_unknown_total_shows_a_count() -> None:
    p = Progress("files", enabled=False)
    p.start(0)
    p.advance(7)
    assert p.line() == "files 7"
