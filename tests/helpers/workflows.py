"""Run a step of a GitHub workflow or of action.yml for real: its `run:` script under bash,
its `env:` filled from the given contexts, as the runner would (`bash -eo pipefail`).

Only what the runner itself provides is faked: RUNNER_TEMP, the workspace, and the
qeguard virtualenv the install step would have made (shims that run this interpreter's
qeguard), so the command line the step builds is what runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # pre-commit needs it, so it is here

from helpers import PROJECT

ACTION = PROJECT / "action.yml"
FILE_PROTECTION = PROJECT / ".github" / "workflows" / "file-protection.yml"
_EXPR = re.compile(r"^\$\{\{\s*(?P<expr>[^}]+?)\s*\}\}$")


def steps(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "runs" in doc:
        found: list[dict[str, Any]] = doc["runs"]["steps"]
        return found
    return [s for job in doc["jobs"].values() for s in job["steps"]]


def step(path: Path, name: str) -> dict[str, Any]:
    (found,) = (s for s in steps(path) if s.get("name") == name)
    return found


def fake_venv(runner_temp: Path) -> Path:
    """`RUNNER_TEMP/qeguard-venv` as the install step leaves it, running this qeguard."""
    venv = runner_temp / "qeguard-venv" / "bin"
    venv.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("qeguard", path=os.path.dirname(sys.executable))
    for name, target in (("python", sys.executable), ("qeguard", exe or sys.executable)):
        shim = venv / name
        prefix = "" if name == "python" or exe else " -m qeguard"
        shim.write_text(f'#!/bin/sh\nexec "{target}"{prefix} "$@"\n')
        shim.chmod(0o755)
    return venv


def run_step(
    path: Path,
    name: str,
    *,
    cwd: Path,
    runner_temp: Path,
    contexts: Mapping[str, str],
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run step `name` of `path` in `cwd`. `contexts` gives the value of each `${{ X }}`
    the step's env uses (unlisted ones are empty, as GitHub leaves them)."""
    s = step(path, name)
    full = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "QEGUARD_"))}
    full.update(
        CI="true",
        GITHUB_ACTIONS="true",
        RUNNER_TEMP=str(runner_temp),
        GITHUB_WORKSPACE=str(cwd),
        GITHUB_STEP_SUMMARY=str(runner_temp / "summary.md"),
        GITHUB_PATH=str(runner_temp / "github_path"),
        GITHUB_ACTION_PATH=str(PROJECT),
    )
    for key, value in (s.get("env") or {}).items():
        m = _EXPR.match(str(value))
        full[key] = contexts.get(m.group("expr"), "") if m else str(value)
    venv = runner_temp / "qeguard-venv" / "bin"
    if venv.is_dir():  # what the install step adds to GITHUB_PATH
        full["PATH"] = f"{venv}{os.pathsep}{full.get('PATH', '')}"
    full.update(env or {})
    runner_temp.mkdir(parents=True, exist_ok=True)
    script = runner_temp / f"step-{len(list(runner_temp.glob('step-*.sh')))}.sh"
    script.write_text(s["run"], encoding="utf-8")
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
