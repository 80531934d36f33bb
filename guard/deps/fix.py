"""Fix suggestions and `--fix`: rewrite exact pins in requirements files in place, and let
each lock file's own tool relock the packages that need a newer version.

Only the version text of an `==` pin changes; comments, markers, extras and spacing stay.
A pin with `--hash` options is not rewritten: the hashes belong to the old version, and
writing a new version beside them would make pip refuse the file (or worse, be trusted).
Lock files are never edited by hand: `uv lock --upgrade-package NAME==VERSION`,
`poetry update NAME` and `pdm update NAME` run in the lock file's folder when the tool is
installed; otherwise, and for Pipfile.lock and pylock.toml, qeguard says what to run.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from qeguard.fsutil import atomic_write
from qeguard.hints import DEFAULT, Hints
from qeguard.report import Fix

if TYPE_CHECKING:
    from qeguard.deps.audit import ScanResult
    from qeguard.deps.model import Dependency

# What to run by hand for a fix --fix does not apply itself: (tool and arguments, whether
# it runs in the input file's folder); None: no command fits, the text says what to do.
_BY_HAND: dict[str, tuple[tuple[str, ...], bool] | str] = {
    "uv.lock": (("uv", "lock", "--upgrade-package", "{name}=={version}"), True),
    "poetry.lock": (("poetry", "update", "{name}"), True),
    "pdm.lock": (("pdm", "update", "{name}"), True),
    "Pipfile.lock": (("pipenv", "upgrade", "{name}=={version}"), True),
    "environment": (("pip", "install", "{name}=={version}"), False),
    "pylock": "regenerate pylock.toml (e.g. `pip lock` or `uv export --format pylock.toml`)",
    "pyproject": "raise the bound in pyproject.toml",
}
LOCKER_TIMEOUT_S = 600


@dataclass(frozen=True, kw_only=True, slots=True)
class Locker:
    """How one lock format's tool relocks some packages."""

    tool: str

    def command(self, exe: str, upgrades: Sequence[tuple[str, str]]) -> list[str]:
        if self.tool == "uv":
            out = [exe, "lock"]
            for name, version in upgrades:
                out += ["--upgrade-package", f"{name}=={version}"]
            return out
        return [exe, "update", *(name for name, _ in upgrades)]


LOCKERS = {
    "uv.lock": Locker(tool="uv"),
    "poetry.lock": Locker(tool="poetry"),
    "pdm.lock": Locker(tool="pdm"),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class FixOutcome:
    fixes: tuple[Fix, ...]  # every suggestion, `applied` where --fix carried it out
    messages: tuple[str, ...]  # what was done, refused, or is left to run by hand
    changed: bool  # a file was rewritten or relocked


def describe_suggestions(result: ScanResult) -> list[str]:
    lines: list[str] = []
    for dep in result.dependencies:
        if dep.version is None:
            continue
        new = result.suggestions.get((dep.source, dep.canonical_name, dep.version))
        if new:
            lines.append(f"{dep.location}: {dep.name} {dep.version} -> {new}")
    if not lines:
        lines.append("no fix suggestions: no vulnerable pins with a fixed release")
    return lines


def rewrite_pin(line: str, name: str, old: str, new: str) -> str | None:
    """`line` with `name==old` changed to `name==new`, or None if the pin is not there."""
    pattern = re.compile(
        r"^(\s*"
        + _name_pattern(name)
        + r"\s*(?:\[[^\]]*\])?\s*===?\s*)"
        + re.escape(old)
        + r"(?=\s|;|,|$|\\)",
        re.IGNORECASE,
    )
    m = pattern.search(line)
    if m is None:
        return None
    return line[: m.end(1)] + new + line[m.end() :]


def _name_pattern(name: str) -> str:
    # PEP 503: -, _ and . are interchangeable and case does not matter.
    parts = re.split(r"[-_.]+", name)
    return r"[-_.]+".join(re.escape(p) for p in parts)


def by_hand(kind: str, name: str, version: str, source: str, hints: Hints = DEFAULT) -> str:
    """What the user runs (or does) to apply one fix to an input of `kind` at `source`."""
    how = _BY_HAND.get(kind, "regenerate the file")
    if isinstance(how, str):
        return how
    words, in_folder = how
    filled = [w.format(name=name, version=version) for w in words]
    return hints.run_in(posixpath.dirname(source) if in_folder else None, *filled)


def apply_fixes(result: ScanResult, *, root: Path, hints: Hints = DEFAULT) -> FixOutcome:
    """Rewrite pins atomically (one write per file) and run the lockers; report what was
    done or refused. Commands left to run by hand come from `hints`: pasteable where the
    user is."""
    messages: list[str] = []
    applied: set[tuple[str, str, str]] = set()  # (path, canonical name, old version)
    edits: dict[str, list[tuple[int, Dependency, str]]] = {}
    locks: dict[str, list[tuple[Dependency, str]]] = {}
    for dep in result.dependencies:
        if dep.version is None:
            continue
        new = result.suggestions.get((dep.source, dep.canonical_name, dep.version))
        if not new:
            continue
        if dep.kind in LOCKERS:
            locks.setdefault(dep.source, []).append((dep, new))
        elif dep.kind != "requirements":
            hint = by_hand(dep.kind, dep.name, new, dep.source, hints)
            messages.append(f"{dep.location}: not rewritten ({dep.kind}); run: {hint}")
        elif dep.hashes:
            compile_ = hints.run_in(
                None, "pip-compile", "--generate-hashes", "--upgrade-package", f"{dep.name}=={new}"
            )
            messages.append(
                f"{dep.location}: {dep.name} pin has --hash options: hashes must be "
                f"regenerated for {dep.name}=={new} (e.g. `{compile_}`); not rewritten"
            )
        elif dep.line is not None:
            edits.setdefault(dep.source, []).append((dep.line, dep, new))
    changed = False
    for source, changes in sorted(edits.items()):
        path = _path(source, root)
        lines = path.read_bytes().decode("utf-8").splitlines(keepends=True)
        count = 0
        for line_no, dep, new in changes:
            assert dep.version is not None
            updated = rewrite_pin(lines[line_no - 1], dep.name, dep.version, new)
            if updated is None:
                messages.append(
                    f"{source}:{line_no}: could not find {dep.name}=={dep.version}; not rewritten"
                )
                continue
            lines[line_no - 1] = updated
            count += 1
            applied.add((source, dep.canonical_name, dep.version))
            messages.append(f"{source}:{line_no}: {dep.name} {dep.version} -> {new}")
        if count:
            atomic_write(path, "".join(lines).encode("utf-8"))
            changed = True
    for source, wanted in sorted(locks.items()):
        done, lines_out = _relock(source, wanted, root, hints)
        messages.extend(lines_out)
        if done:
            changed = True
            applied.update((source, d.canonical_name, d.version or "") for d, _ in wanted)
    fixes = tuple(
        replace(f, applied=(f.path or "", _canon(f.package), f.version or "") in applied)
        for f in result.fixes
    )
    return FixOutcome(fixes=fixes, messages=tuple(messages), changed=changed)


def _relock(
    source: str, wanted: Sequence[tuple[Dependency, str]], root: Path, hints: Hints
) -> tuple[bool, list[str]]:
    """Run the lock file's tool for `wanted`; (whether the lock was changed, messages)."""
    kind = wanted[0][0].kind
    locker = LOCKERS[kind]
    upgrades = sorted({(d.name, new) for d, new in wanted})
    lock = _path(source, root)
    words = locker.command(locker.tool, upgrades)
    # The command as the user would type it where they are, to run it again by hand.
    shown = hints.run_in(posixpath.dirname(source), *words)
    exe = shutil.which(locker.tool)
    if exe is None:
        return False, [f"{source}: {locker.tool} is not installed; run: {shown}"]
    cmd = locker.command(exe, upgrades)
    before = lock.read_bytes()
    try:
        proc = subprocess.run(
            cmd,
            cwd=lock.parent,
            capture_output=True,
            text=True,
            timeout=LOCKER_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, [f"{source}: `{shown}` failed: {exc}"]
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return False, [f"{source}: `{shown}` failed (exit {proc.returncode}): {' / '.join(tail)}"]
    if lock.read_bytes() == before:
        return False, [f"{source}: `{shown}` left the lock file unchanged"]
    return True, [f"{source}: relocked with `{hints.run_in(None, *words)}`"]


def _path(source: str, root: Path) -> Path:
    return Path(source) if Path(source).is_absolute() else root / source


def _canon(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)
