"""Static analysis of the repository's Python sources with bandit, as report findings.

bandit is an optional extra (`pip install 'qeguard[sast]'`). It runs as a subprocess of
the same interpreter (`python -m bandit -f json`): its JSON output is its stable,
documented interface, unlike its Python API. In a git repository the files are those git
lists (tracked and untracked, .gitignore respected); elsewhere a walk that skips hidden
and virtual-environment folders.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qeguard.errors import GuardError, UsageError
from qeguard.report import Finding, Location, Severity
from qeguard.rules import SAST_PREFIX, RuleId

INSTALL_HINT = "install the extra: pip install 'qeguard[sast]'"
_SKIP_DIRS = frozenset(
    {"venv", "env", "node_modules", "__pycache__", "build", "dist", "site-packages"}
)
_SEVERITY = {"HIGH": Severity.HIGH, "MEDIUM": Severity.MEDIUM, "LOW": Severity.LOW}
_CHUNK = 500  # files per bandit run, far below any command-line length limit


class SastError(GuardError):
    """bandit is missing or could not run."""


def require_bandit() -> None:
    try:
        importlib.import_module("bandit")  # the check is whether it imports at all
    except ImportError:
        raise UsageError("--sast needs bandit, which is not installed", hint=INSTALL_HINT) from None


def python_files(root: Path) -> list[str]:
    """Repository-relative POSIX paths of the Python sources to analyse, sorted."""
    if (root / ".git").exists():
        from qeguard.git import GitRepo

        paths = [p for p in GitRepo(root).list_paths() if p.endswith(".py")]
        return sorted(p for p in paths if (root / p).is_file())
    out: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS]
        rel = Path(folder).relative_to(root)
        out.extend((rel / f).as_posix() for f in files if f.endswith(".py"))
    return sorted(out)


def run_bandit(root: Path, files: Sequence[str]) -> dict[str, Any]:
    """bandit's JSON for `files` (relative to `root`), merged over chunked runs."""
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    config = ["-c", "pyproject.toml"] if _has_bandit_table(root / "pyproject.toml") else []
    for start in range(0, len(files), _CHUNK):
        chunk = list(files[start : start + _CHUNK])
        cmd = [sys.executable, "-m", "bandit", "-f", "json", "-q", *config, "--", *chunk]
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
        # bandit exits 1 when it found issues; anything else (or no JSON) is a failure.
        try:
            data = json.loads(proc.stdout) if proc.returncode in (0, 1) else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SastError(
                f"bandit failed (exit {proc.returncode}): {detail[0]}",
                where=str(root),
                hint="run `python -m bandit -r .` to see the full error",
            )
        results.extend(data.get("results") or [])
        errors.extend(data.get("errors") or [])
    return {"results": results, "errors": errors}


def _has_bandit_table(pyproject: Path) -> bool:
    import tomllib

    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data.get("tool"), dict) and "bandit" in data["tool"]


def _rel(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def findings_from_bandit(data: dict[str, Any]) -> list[Finding]:
    """bandit JSON -> `QG-SAST-<test id>` findings (and `QG-SAST-ERROR` for unread files)."""
    out: list[Finding] = []
    for r in data.get("results") or ():
        test_id = str(r.get("test_id") or "B000")
        path = _rel(str(r.get("filename") or "?"))
        line = r.get("line_number") if isinstance(r.get("line_number"), int) else None
        cwe = r.get("issue_cwe") if isinstance(r.get("issue_cwe"), dict) else {}
        out.append(
            Finding(
                rule=f"{SAST_PREFIX}{test_id}",
                severity=_SEVERITY.get(str(r.get("issue_severity")).upper(), Severity.INFO),
                location=Location(path=path, line=line),
                title=f"{test_id} {r.get('test_name') or ''}".strip(),
                message=str(r.get("issue_text") or test_id),
                fix=f"review the code (see {r.get('more_info')}); if it is safe, mark the "
                f"line `# nosec {test_id}` with a reason",
                details={
                    "confidence": str(r.get("issue_confidence") or "UNDEFINED").lower(),
                    "test_name": r.get("test_name"),
                    "cwe": cwe.get("id"),
                    "more_info": r.get("more_info"),
                },
            )
        )
    for e in data.get("errors") or ():
        path = _rel(str(e.get("filename") or "?"))
        out.append(
            Finding(
                rule=RuleId.SAST_ERROR,
                severity=Severity.LOW,
                location=Location(path=path),
                title=f"bandit could not analyse {path}",
                message=f"{path}: {e.get('reason') or 'unknown error'}; it was not checked",
                fix="fix the file so Python can parse it, then run again",
            )
        )
    return out


def scan_sources(root: Path) -> list[Finding]:
    """bandit over the repository's Python sources; raises UsageError without bandit."""
    require_bandit()
    files = python_files(root)
    if not files:
        return []
    return findings_from_bandit(run_bandit(root, files))
