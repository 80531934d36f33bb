"""qeguard watch: real watchdog observers on temporary repositories, bounded waits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import KeyPair, integrity_findings, protect
from qeguard.integrity.restore import Action
from qeguard.integrity.watch import Watcher, WatchEvent, watch

MODEL = "src/pkg/core/model.py"
ORIGINAL = "def predict(x):\n    return 2 * x\n"
# watchdog's inotify backend warns when a folder (the quarantine's) is created while it is
# adding watches for its parent; it is an internal note, not a lost event.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")
DEADLINE_S = 10.0  # generous upper bound for a slow CI box; the 2 s goal is asserted apart


def wait_for(predicate: Callable[[], object], timeout: float = DEADLINE_S) -> float:
    """Poll until `predicate()` is true; return the seconds it took (fail at the deadline)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def guarded(repo: Path, keypair: Callable[..., KeyPair]) -> Path:
    protect(repo, keypair("alice"), special=True)
    return repo


class Running:
    def __init__(self) -> None:
        self.events: list[WatchEvent] = []
        self.lock = threading.Lock()

    def emit(self, event: WatchEvent) -> None:
        with self.lock:
            self.events.append(event)

    def findings(self, rule: str, path: str) -> list[WatchEvent]:
        with self.lock:
            return [
                e for e in self.events if e.finding and e.finding.rule == rule and e.key == path
            ]

    def keys(self) -> set[str]:
        with self.lock:
            return {e.key for e in self.events}


@contextlib.contextmanager
def watching(root: Path, *, restore: bool, poll: bool = False) -> Iterator[Running]:
    running = Running()
    stop = threading.Event()
    ready = threading.Event()
    watcher = Watcher(root, restore=restore)
    thread = threading.Thread(
        target=watch,
        args=(watcher, running.emit),
        daemon=True,
        kwargs={"poll": poll, "stop": stop, "ready": lambda _name: ready.set()},
    )
    thread.start()
    assert ready.wait(DEADLINE_S), "the watcher did not start"
    try:
        yield running
    finally:
        stop.set()
        thread.join(DEADLINE_S)
        assert not thread.is_alive(), "the watcher did not stop"


@pytest.fixture
def restoring(guarded: Path) -> Iterator[Running]:
    with watching(guarded, restore=True) as running:
        yield running


@pytest.fixture
def reporting(guarded: Path) -> Iterator[Running]:
    with watching(guarded, restore=False) as running:
        yield running


def test_tamper_is_reported_and_restored_within_two_seconds(
    guarded: Path, restoring: Running
) -> None:
    started = time.monotonic()
    (guarded / MODEL).write_text("def predict(x):\n    return 0  # tampered\n")
    wait_for(
        lambda: (
            restoring.findings("QG-INT-MODIFIED", MODEL)
            and (guarded / MODEL).read_text() == ORIGINAL
        )
    )
    assert time.monotonic() - started < 2.0
    (event,) = restoring.findings("QG-INT-MODIFIED", MODEL)
    assert event.restore is not None and event.restore.action is Action.RESTORED
    assert event.restore.backup is not None
    assert (guarded / event.restore.backup).read_text().endswith("# tampered\n")
    assert integrity_findings(guarded) == []
    # A second tamper is a new change, reported and restored again.
    (guarded / MODEL).unlink()
    wait_for(lambda: restoring.findings("QG-INT-MISSING", MODEL) and (guarded / MODEL).is_file())
    assert (guarded / MODEL).read_text() == ORIGINAL


def test_move_reports_both_ends(guarded: Path, reporting: Running) -> None:
    os.rename(guarded / MODEL, guarded / "src/pkg/core/renamed.py")
    wait_for(
        lambda: (
            reporting.findings("QG-INT-MISSING", MODEL)
            and reporting.findings("QG-INT-ADDED", "src/pkg/core/renamed.py")
        )
    )
    # Moving it back clears the finding once.
    os.rename(guarded / "src/pkg/core/renamed.py", guarded / MODEL)
    wait_for(lambda: any(e.kind == "resolved" and e.key == MODEL for e in reporting.events))


def test_editor_save_by_rename_is_detected(guarded: Path, reporting: Running) -> None:
    tmp = guarded / "src/pkg/core/.model.py.swp"
    tmp.write_text("edited\n")
    os.replace(tmp, guarded / MODEL)
    wait_for(lambda: reporting.findings("QG-INT-MODIFIED", MODEL))
    assert len(reporting.findings("QG-INT-MODIFIED", MODEL)) == 1


def test_unprotected_and_ignored_files_make_no_events(guarded: Path, reporting: Running) -> None:
    (guarded / "notes.txt").write_text("changed, but nobody protects it\n")
    (guarded / "scratch.log").write_text("new unprotected file\n")
    (guarded / "src/pkg/core/__pycache__").mkdir()
    (guarded / "src/pkg/core/__pycache__/model.cpython-311.pyc").write_bytes(b"\0ignored")
    # A protected change afterwards is the barrier: events are handled in order.
    (guarded / "src/pkg/util.py").write_text("HELPER = 2\n")
    wait_for(lambda: reporting.findings("QG-INT-MODIFIED", "src/pkg/util.py"))
    assert reporting.keys() == {"tier:core", "src/pkg/util.py"}  # tier:core = 1 of 2 signers


def test_polling_observer_detects_and_restores(guarded: Path) -> None:
    with watching(guarded, restore=True, poll=True) as running:
        (guarded / MODEL).write_text("polled tamper\n")
        wait_for(
            lambda: (
                running.findings("QG-INT-MODIFIED", MODEL)
                and (guarded / MODEL).read_text() == ORIGINAL
            )
        )


def test_core_reports_once_and_rescan_catches_missed_events(guarded: Path) -> None:
    watcher = Watcher(guarded)
    first = watcher.rescan()
    assert [e.key for e in first] == ["tier:core"]
    assert watcher.rescan() == []  # nothing new: nothing reported
    (guarded / MODEL).write_text("changed with no event delivered\n")
    events = watcher.rescan()
    assert [(e.kind, e.key, e.finding.rule if e.finding else None) for e in events] == [
        ("finding", MODEL, "QG-INT-MODIFIED")
    ]
    assert watcher.check([MODEL]) == []
    (guarded / MODEL).write_text(ORIGINAL)
    (event,) = watcher.check([MODEL])
    assert (event.kind, event.resolved) == ("resolved", ("QG-INT-MODIFIED",))
    assert "OK src/pkg/core/model.py" in event.text()


def test_tampered_manifest_is_reported_and_cannot_steer_restores(guarded: Path) -> None:
    watcher = Watcher(guarded, restore=True)
    watcher.rescan()
    lst = guarded / ".qeguard/manifests/core.list"
    lst.write_text(lst.read_text().replace("src/pkg/core/model.py", "src/pkg/core/model.py.bak"))
    events = watcher.check([".qeguard/manifests/core.list"])
    assert [e.finding.rule for e in events if e.finding] == ["QG-SIG-BINDING"]
    # The entries verified before the tampering still decide what is restored.
    (guarded / MODEL).write_text("tampered\n")
    (event,) = watcher.check([MODEL])
    assert event.restore is not None and event.restore.action is Action.RESTORED
    assert (guarded / MODEL).read_text() == ORIGINAL


def test_cli_subprocess_format_json_log_restore_and_ctrl_c(guarded: Path, tmp_path: Path) -> None:
    log = tmp_path / "watch.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qeguard",
            "-C",
            str(guarded),
            "watch",
            "--restore",
            "--format",
            "json",
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("watching" in line for line in stderr) or proc.poll() is not None)
        assert proc.poll() is None, "".join(stderr)
        started = time.monotonic()
        (guarded / MODEL).write_text("tampered from another shell\n")
        wait_for(lambda: (guarded / MODEL).read_text() == ORIGINAL)
        assert time.monotonic() - started < 2.0

        def restored() -> list[dict[str, object]]:
            lines = log.read_text().splitlines() if log.exists() else []
            return [d for d in map(json.loads, lines) if d.get("rule") == "QG-INT-MODIFIED"]

        wait_for(restored)
        (record,) = restored()
        assert record["event"] == "finding" and record["location"] == {"path": MODEL, "line": None}
        assert isinstance(record["restore"], dict) and record["restore"]["action"] == "restored"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(DEADLINE_S)
    reader.join(DEADLINE_S)  # the only reader of stderr
    out = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 130
    # Ctrl-C is how a watch ends: said plainly, not as an error.
    assert "stopped watching" in "".join(stderr) and "error:" not in "".join(stderr)
    assert "Traceback" not in "".join(stderr)
    stdout_records = [json.loads(line) for line in out.splitlines()]
    assert any(r.get("rule") == "QG-INT-MODIFIED" for r in stdout_records)
