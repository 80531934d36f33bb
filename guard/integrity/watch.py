"""Live protection: file-system events in, integrity changes (and restores) out.

`Watcher` decides and never waits: give it paths (from events, which are only hints) and
it re-hashes them, compares them with what the *verified* manifests vouch for, and
returns each change in the findings once. `watch()` is the edge: a watchdog observer
(native, or polling when asked or when inotify's limits are reached) feeds a queue,
bursts are debounced, and a full rescan runs at start and on a timer so that a dropped
event is caught later.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qeguard.integrity.checks.entries import compare
from qeguard.integrity.gate import Context, open_context, work_tree
from qeguard.integrity.layout import MANIFEST_DIR, QUARANTINE_DIR
from qeguard.integrity.manifest import Entry
from qeguard.integrity.policy import Tier, is_never_protected
from qeguard.integrity.restore import (
    RESTORABLE_RULES,
    Action,
    Outcome,
    Restorer,
    SignedEntry,
    load_signed,
    restorer_for,
)
from qeguard.integrity.trees.base import Seen
from qeguard.integrity.trees.work import WorkTree
from qeguard.report import Finding
from watchdog.events import FileSystemEvent, FileSystemEventHandler

DEFAULT_RESCAN_S = 300.0
DEFAULT_DEBOUNCE_S = 0.15
# A burst that never goes quiet is still handled this often.
MAX_BATCH_WAIT_S = 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchEvent:
    """One integrity change: a new finding (maybe with a restore), or a path clean again."""

    kind: str  # "finding" | "resolved"
    time: datetime
    key: str  # the path, or "tier:<name>" for a manifest-level problem
    finding: Finding | None = None
    restore: Outcome | None = None
    resolved: tuple[str, ...] = ()  # rule ids that no longer apply

    def to_dict(self) -> dict[str, Any]:
        stamp = self.time.astimezone(UTC).isoformat(timespec="milliseconds")
        if self.finding is not None:
            return {
                "event": self.kind,
                "time": stamp,
                **self.finding.to_dict(),
                "restore": self.restore.to_dict() if self.restore else None,
            }
        return {"event": self.kind, "time": stamp, "path": self.key, "rules": list(self.resolved)}

    def text(self) -> str:
        stamp = self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.finding is None:
            return (
                f"{stamp} OK {self.key}: matches its signed content again "
                f"({', '.join(self.resolved)} cleared)"
            )
        f = self.finding
        where = f.location.path if f.location else self.key
        tier = f" [{f.tier}]" if f.tier else ""
        line = f"{stamp} {f.severity.value.upper()} {f.rule} {where}{tier}: {f.message}"
        if self.restore is not None:
            r = self.restore
            if r.action is Action.RESTORED:
                line += f" -> {r.message}"
            elif r.action is not Action.CLEAN:
                line += f" -> NOT restored ({r.action.value}: {r.message})"
        return line


class Watcher:
    """The deciding core: paths in, `WatchEvent`s out. Holds what it already reported."""

    def __init__(
        self,
        root: Path,
        *,
        restore: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.ctx: Context = open_context(root)
        self.root = self.ctx.root
        self.tree: WorkTree = work_tree(self.ctx)
        self.clock = clock
        self.restorer: Restorer | None = restorer_for(self.ctx) if restore else None
        # key -> fingerprint -> finding, for everything reported and not yet cleared.
        self._known: dict[str, dict[str, Finding]] = {}
        # Tier name -> (tier, entries by path), from the last manifest that verified; a
        # manifest that later fails verification is reported and never replaces these.
        self._tiers: dict[str, tuple[Tier, dict[str, Entry]]] = {}
        self._signed: dict[str, SignedEntry] = {}
        self._tier_order: list[str] = []
        self._matcher: Any = None

    @property
    def protected(self) -> int:
        return len(self._signed)

    @property
    def tier_names(self) -> list[str]:
        return list(self._tier_order)

    def reload(self) -> list[WatchEvent]:
        """Re-read trust and the manifests; report manifest-level changes."""
        state = load_signed(self.ctx, self.tree)
        policy = state.config.policy
        self._matcher = policy.matcher()
        self._tier_order = [t.name for t in policy.tiers]
        tiers: dict[str, tuple[Tier, dict[str, Entry]]] = {}
        for check in state.checks:
            name = check.tier.name
            if name not in state.untrusted:
                tiers[name] = (check.tier, {e.path: e for e in check.entries or ()})
            elif name in self._tiers:
                tiers[name] = self._tiers[name]  # keep the last verified entries
        self._tiers = tiers
        signed = dict(state.entries)
        for name, (tier, entries) in tiers.items():
            if name in state.untrusted:
                for path, e in entries.items():
                    signed.setdefault(path, SignedEntry(entry=e, tier=tier))
        self._signed = signed
        events: list[WatchEvent] = []
        for check in state.checks:
            events += self._diff(f"tier:{check.tier.name}", check.findings)
        events += self._diff("trust", state.warnings)
        return events

    def rescan(self) -> list[WatchEvent]:
        """Reload, then check every candidate path, every entry and every open finding."""
        events = self.reload()
        paths = set(self.tree.candidates())
        for _, entries in self._tiers.values():
            paths.update(entries)
        paths.update(k for k in self._known if not k.startswith(("tier:", "trust")))
        return events + self._check(paths, from_git=True)

    def check(self, paths: Iterable[str]) -> list[WatchEvent]:
        """Check the repository-relative `paths` an event named (files or folders)."""
        wanted: set[str] = set()
        reload = False
        for path in paths:
            if (
                path == ".git"
                or path.startswith(".git/")
                or path.startswith(f"{QUARANTINE_DIR}/")
                or path == QUARANTINE_DIR
            ):
                continue
            if path.startswith(f"{MANIFEST_DIR}/") or path in (MANIFEST_DIR, ".qeguard"):
                reload = True
                if path != ".qeguard":
                    continue
                # The whole folder moved or went: its policy and trust entries too.
            wanted.update(self._expand(path))
        events = self.reload() if reload else []
        return events + self._check(wanted, from_git=False)

    def _expand(self, path: str) -> set[str]:
        """A path and, when it is (or was) a folder, the protected paths beneath it."""
        out = {path}
        prefix = path + "/"
        for _, entries in self._tiers.values():
            out.update(p for p in entries if p.startswith(prefix))
        out.update(k for k in self._known if k.startswith(prefix))
        full = self.root / path
        if full.is_dir() and not full.is_symlink():
            for folder, dirs, files in os.walk(full):
                rel = Path(folder).relative_to(self.root).as_posix()
                dirs[:] = [d for d in dirs if d != ".git"]
                out.update(f"{rel}/{name}" for name in files + dirs)
        return out

    def _ignored(self, paths: list[str]) -> set[str]:
        """Which of `paths` git ignores (those are never protected)."""
        if not paths or self.ctx.repo is None:
            return set()
        proc = subprocess.run(
            ["git", "check-ignore", "-z", "--stdin"],
            cwd=self.root,
            check=False,
            input=b"\0".join(os.fsencode(p) for p in paths) + b"\0",
            capture_output=True,
        )
        return {os.fsdecode(p) for p in proc.stdout.split(b"\0") if p}

    def _findings(self, paths: set[str], *, from_git: bool) -> dict[str, list[Finding]]:
        observed = self.tree.observe(sorted(paths))
        tier_of = self._matcher.tier_of
        unlisted = [
            p
            for p in paths
            if p not in self._signed
            and tier_of(p) is not None
            and observed[p].seen not in (Seen.MISSING, Seen.DIRECTORY)
        ]
        ignored = set() if from_git else self._ignored(unlisted)
        out: dict[str, list[Finding]] = {}
        for path in paths:
            found: list[Finding] = []
            assigned_to = None if path in ignored else tier_of(path)
            for name, (tier, entries) in self._tiers.items():
                entry = entries.get(path)
                assigned = [path] if assigned_to == name else []
                if entry is None and not assigned:
                    continue
                found += compare(
                    tier,
                    [entry] if entry else [],
                    [(path, observed[path])],
                    assigned,
                    exec_bit_meaningful=self.tree.exec_bit_meaningful,
                )
            out[path] = found
        return out

    def _check(self, paths: set[str], *, from_git: bool) -> list[WatchEvent]:
        paths = {p for p in paths if not is_never_protected(p)}
        if not paths:
            return []
        results = self._findings(paths, from_git=from_git)
        events: list[WatchEvent] = []
        restored: set[str] = set()
        for path in sorted(results):
            new = self._diff(path, results[path])
            if self.restorer is not None and path in self._signed:
                needs = [e for e in new if e.finding and e.finding.rule in RESTORABLE_RULES]
                if needs:
                    outcome = self.restorer.restore(self._signed[path])
                    first = needs[0]
                    new[new.index(first)] = WatchEvent(
                        kind=first.kind,
                        time=first.time,
                        key=first.key,
                        finding=first.finding,
                        restore=outcome,
                    )
                    if outcome.action is Action.RESTORED:
                        restored.add(path)
            events += new
        if restored:
            # Settle the state quietly: the restore's own file events must not re-report.
            after = self._findings(restored, from_git=from_git)
            for path, found in after.items():
                self._set(path, found)
        return events

    def _diff(self, key: str, findings: list[Finding]) -> list[WatchEvent]:
        now = self.clock()
        old = self._known.get(key, {})
        new = {f.fingerprint: f for f in findings}
        events = [
            WatchEvent(kind="finding", time=now, key=key, finding=f)
            for fp, f in new.items()
            if fp not in old
        ]
        gone = sorted({f.rule for fp, f in old.items() if fp not in new})
        if gone and not new:
            events.append(WatchEvent(kind="resolved", time=now, key=key, resolved=tuple(gone)))
        self._set(key, findings)
        return events

    def _set(self, key: str, findings: list[Finding]) -> None:
        if findings:
            self._known[key] = {f.fingerprint: f for f in findings}
        else:
            self._known.pop(key, None)


class _Handler(FileSystemEventHandler):
    """Turns watchdog events into repository-relative paths on a queue."""

    # Reads (including our own hashing) must not look like changes.
    _IGNORED = frozenset({"opened", "closed_no_write"})

    def __init__(self, root: Path, out: queue.Queue[str]):
        super().__init__()
        self.root = str(root)
        self.out = out

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type in self._IGNORED:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            path = os.fsdecode(raw)
            rel = os.path.relpath(path, self.root)
            if rel == "." or rel.startswith(".."):
                continue
            rel = rel.replace(os.sep, "/")
            if rel == ".git" or rel.startswith(".git/"):
                continue
            self.out.put(rel)


def start_observer(
    root: Path, handler: _Handler, *, poll: bool, poll_interval: float = 0.5
) -> tuple[Any, str]:
    """A started observer and its name; falls back to polling at inotify's limits."""
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    if not poll:
        observer = Observer()
        observer.schedule(handler, str(root), recursive=True)
        try:
            observer.start()
            return observer, type(observer).__name__
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE, errno.ENFILE):
                raise
            reason = exc.strerror or str(exc)
        fallback: Any = PollingObserver(timeout=poll_interval)
        fallback.schedule(handler, str(root), recursive=True)
        fallback.start()
        return fallback, f"PollingObserver (native observer failed: {reason})"
    observer = PollingObserver(timeout=poll_interval)
    observer.schedule(handler, str(root), recursive=True)
    observer.start()
    return observer, "PollingObserver"


def watch(
    watcher: Watcher,
    emit: Callable[[WatchEvent], None],
    *,
    poll: bool = False,
    rescan_s: float = DEFAULT_RESCAN_S,
    debounce_s: float = DEFAULT_DEBOUNCE_S,
    stop: threading.Event | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Run until `stop` is set (or Ctrl-C); the observer is always stopped on the way out."""
    stop = stop or threading.Event()
    pending: queue.Queue[str] = queue.Queue()
    observer, name = start_observer(watcher.root, _Handler(watcher.root, pending), poll=poll)
    try:
        # The observer runs before the first scan, so nothing changed during it is lost.
        for event in watcher.rescan():
            emit(event)
        if ready is not None:
            ready(name)
        next_rescan = time.monotonic() + rescan_s
        while not stop.is_set():
            wait = max(0.0, min(0.25, next_rescan - time.monotonic()))
            batch: set[str] = set()
            with contextlib.suppress(queue.Empty):
                batch.add(pending.get(timeout=wait))
            if batch:
                first = time.monotonic()
                while time.monotonic() - first < MAX_BATCH_WAIT_S:
                    try:
                        batch.add(pending.get(timeout=debounce_s))
                    except queue.Empty:
                        break
                for event in watcher.check(batch):
                    emit(event)
            if time.monotonic() >= next_rescan:
                for event in watcher.rescan():
                    emit(event)
                next_rescan = time.monotonic() + rescan_s
    finally:
        observer.stop()
        observer.join(timeout=5)


__all__ = ["DEFAULT_RESCAN_S", "WatchEvent", "Watcher", "start_observer", "watch"]
