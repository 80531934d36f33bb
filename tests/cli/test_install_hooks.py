"""`qeguard install-hooks`: says when commits would fail before anything is checked, and
the commit-msg hook records an emergency override in the commit itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import CORE_FILE, git_run, protect, run_qeguard, with_bare_remote, write_files


def git(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Real git with the installed qeguard on PATH, as on a developer's machine."""
    full = dict(os.environ)
    full["PATH"] = os.path.dirname(sys.executable) + os.pathsep + full.get("PATH", "")
    for name in ("QEGUARD_OVERRIDE", "CI", "GITHUB_ACTIONS"):
        full.pop(name, None)
    full.update(env)
    return subprocess.run(
        ["git", *args], cwd=repo, env=full, capture_output=True, text=True, check=False
    )


def test_before_init_it_warns(repo: Path) -> None:
    r = run_qeguard("install-hooks", cwd=repo)
    assert r.code == 0
    assert "warning: no .qeguard/policy.toml yet" in r.err and "qeguard" in r.err
    (repo / "x.txt").write_text("x\n")
    git_run(repo, "add", "x.txt")
    blocked = git(repo, "commit", "-m", "x")
    assert blocked.returncode != 0 and "no policy found" in blocked.stderr


def test_unstaged_policy_is_named_at_install_and_at_commit(repo: Path) -> None:
    assert run_qeguard("init", "--preset", "default", cwd=repo).code == 0
    r = run_qeguard("install-hooks", cwd=repo)
    assert "exists but is not staged" in r.err and "add .qeguard" in r.err
    (repo / "x.txt").write_text("x\n")
    git_run(repo, "add", "x.txt")
    blocked = git(repo, "commit", "-m", "x")
    assert blocked.returncode != 0
    assert "the policy is not staged" in blocked.stderr and "git add .qeguard" in blocked.stderr
    git_run(repo, "add", ".qeguard")
    assert "not staged" not in run_qeguard("install-hooks", cwd=repo).err


def test_override_is_recorded_as_a_trailer_and_seen_at_push(
    tmp_path: Path, repo: Path, keypair: Any
) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    with_bare_remote(tmp_path, repo)
    r = run_qeguard("install-hooks", cwd=repo)
    assert "commit-msg: installed" in r.out
    git_run(repo, "checkout", "-q", "-b", "hotfix")
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 0\n"})
    git_run(repo, "add", CORE_FILE)
    done = git(repo, "commit", "-m", "hotfix", QEGUARD_OVERRIDE="prod is down, INC-42")
    assert done.returncode == 0, done.stderr
    message = git_run(repo, "log", "-1", "--format=%B")
    assert message.rstrip().endswith("Qeguard-Override: prod is down, INC-42")
    # A commit without the variable gets no trailer.
    (repo / "notes.txt").write_text("unprotected\n")
    git_run(repo, "add", "notes.txt")
    assert git(repo, "commit", "-m", "notes").returncode == 0
    assert "Qeguard-Override" not in git_run(repo, "log", "-1", "--format=%B")
    # CI (strict) names the override instead of an unexplained block.
    code, out, _ = run_qeguard("verify", "--trust-ref", "origin/main", "--format", "json", cwd=repo)
    assert code == 1
    assert "prod is down, INC-42" in out and "QG-OVERRIDE" in out
