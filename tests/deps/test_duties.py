"""The dependency duties of the project's own files: the `dependencies.yml` workflow's
audit and update jobs, and which changed files trigger the workflow and the hook."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # pre-commit needs it, so it is here
from helpers import DATA, PROJECT
from qeguard.cli.main import main

WORKFLOW = yaml.safe_load((PROJECT / ".github" / "workflows" / "dependencies.yml").read_text())
HOOKS = {h["id"]: h for h in yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())}
DEPENDENCY_FILES = [
    "requirements.txt",
    "requirements-dev.in",
    "requirements/dev.txt",
    "requirements/base.in",
    "services/api/requirements.txt",
    "constraints.txt",
    "pyproject.toml",
    "sub/pyproject.toml",
    "uv.lock",
    "sub/uv.lock",
    "apps/web/poetry.lock",
    "pdm.lock",
    "Pipfile.lock",
    "pylock.toml",
    "sub/pylock.dev.toml",
]
OTHER_FILES = ["src/pkg/model.py", "README.md", "requirements.py", "Cargo.lock", "yarn.lock"]


def _github_glob(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern syntax for `paths:` (`**` any folders, `*` within one)."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + "$")


def _triggers(event: str, path: str) -> bool:
    paths = WORKFLOW[True][event]["paths"]  # YAML 1.1 reads the `on:` key as True
    return any(_github_glob(p).match(path) for p in paths)


@pytest.mark.parametrize("path", DEPENDENCY_FILES)
def test_dependency_files_in_subfolders_trigger_the_workflow_and_the_hook(path):
    assert _triggers("push", path) and _triggers("pull_request", path)
    assert re.search(HOOKS["qeguard-deps"]["files"], path)


@pytest.mark.parametrize("path", OTHER_FILES)
def test_other_files_trigger_neither(path):
    assert not _triggers("pull_request", path)
    assert not re.search(HOOKS["qeguard-deps"]["files"], path)


def test_the_hook_scans_the_changed_file_below_the_root(tmp_path: Path, capsys, chdir):
    """pre-commit runs `qeguard deps FILE...` from the repository root with the changed
    files that match `files:` (pass_filenames)."""
    assert HOOKS["qeguard-deps"]["pass_filenames"] is True
    (tmp_path / "sub").mkdir()
    shutil.copy(DATA / "deps" / "pdm" / "pdm.lock", tmp_path / "sub" / "pdm.lock")
    chdir(tmp_path)
    entry = HOOKS["qeguard-deps"]["entry"].split()
    assert main([*entry[1:], "sub/pdm.lock", "--format", "json"]) == 1
    assert '"path": "sub/pdm.lock"' in capsys.readouterr().out


def test_the_audit_job_refreshes_caches_and_runs_bandit():
    steps = WORKFLOW["jobs"]["scan"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "qeguard deps --sast" in runs and "qeguard sbom" in runs
    cache = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache@"))
    assert cache["with"]["path"] == "~/.cache/qeguard"  # platformdirs' cache on Linux


def test_the_update_job_fixes_tests_and_opens_one_pull_request():
    job = WORKFLOW["jobs"]["update"]
    assert "schedule" in job["if"] and "schedule" in WORKFLOW[True]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert WORKFLOW["permissions"] == {}  # nothing beyond what each job declares
    runs = [s.get("run", "") for s in job["steps"]]
    fix = next(i for i, r in enumerate(runs) if "qeguard deps --fix" in r)
    tests = next(i for i, r in enumerate(runs) if "pytest" in r)
    pr = next(i for i, r in enumerate(runs) if "gh pr create" in r)
    assert fix < tests < pr
    body = runs[pr]
    assert "gh pr edit" in body  # an open pull request is updated, not duplicated
    assert 'report["fixes"]' in body and "signatures" in body and "qeguard sign --tier" in body
    assert job["steps"][pr]["env"]["GH_TOKEN"] == "${{ github.token }}"
    checkout = job["steps"][0]
    assert checkout["with"]["persist-credentials"] is False
