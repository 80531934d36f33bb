"""Every printed command works where it is printed: pasted into a real shell, from the
folder the user is in, with paths that need quoting, and in the hook's staged mode."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import FILES, KeyPair, Protected, git_run
from qeguard.hints import Hints

SPACED = "src/pkg/my file.py"  # a protected path that breaks an unquoted command
SCRIPT = "src/pkg/core/run.sh"
BIN = Path(sys.executable).parent  # the installed console script lives here


def qeguard(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it from `cwd`."""
    return subprocess.run(
        [str(BIN / "qeguard"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )


def paste(command: str, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`command` typed into a real shell in `cwd`, with qeguard on PATH."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def fixes(proc: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """rule -> (the fix, the re-sign alternative) of a JSON report's findings."""
    out: dict[str, tuple[str, str]] = {}
    for f in json.loads(proc.stdout)["findings"]:
        first, _, resign = (f["fix"] or "").partition("  (or re-sign: ")
        out[f["rule"]] = (first, resign.removesuffix(")"))
    return out


@pytest.fixture
def project(repo: Path, keypair: Any) -> Protected:
    """The default preset (one signer per tier), a protected path with a space, an
    executable script; signed and committed."""
    files = {**FILES, SPACED: "x = 1\n"}
    return Protected.build(
        repo, [keypair("alice")], files=files, special=True, preset="default", tiers="*"
    )


def test_fix_hints_work_pasted_from_a_subfolder(project: Protected) -> None:
    sub = project.root / "src/pkg"
    (project.root / SPACED).write_text("x = 'tampered'\n")
    os.chmod(project.root / SCRIPT, 0o644)
    report = qeguard("verify", "--format", "json", cwd=sub)
    assert report.returncode == 1, report.stderr
    found = fixes(report)
    restore, resign = found["QG-INT-MODIFIED"]
    assert restore == "qeguard restore 'my file.py'"
    assert found["QG-INT-EXEC"][0] == "chmod +x core/run.sh"
    for command in (restore, found["QG-INT-EXEC"][0]):
        done = paste(command, cwd=sub)
        assert done.returncode == 0, (command, done.stderr)
    assert qeguard("verify", cwd=sub).returncode == 0

    # The re-sign alternative, with the signer's key for KEY: also from the subfolder.
    (project.root / SPACED).write_text("x = 2\n")
    _, resign = fixes(qeguard("verify", "--format", "json", cwd=sub))["QG-INT-MODIFIED"]
    assert resign.endswith("&& git add ../../.qeguard")
    key: KeyPair = project.signer("alice")
    done = paste(resign.replace(" KEY ", f" {shlex.quote(str(key.private))} "), cwd=sub)
    assert done.returncode == 0, done.stderr
    assert qeguard("verify", cwd=sub).returncode == 0
    staged = git_run(project.root, "diff", "--cached", "--name-only").split()
    assert ".qeguard/manifests/source.list" in staged  # `git add` reached the index


def test_staged_hint_fixes_the_index_not_only_the_work_tree(project: Protected) -> None:
    root = project.root  # git runs hooks from the top of the work tree
    (root / SPACED).write_text("x = 'tampered'\n")
    git_run(root, "add", SPACED)
    blocked = qeguard("verify", "--staged", "--format", "json", cwd=root)
    assert blocked.returncode == 1
    restore, _ = fixes(blocked)["QG-INT-MODIFIED"]
    assert restore == f"qeguard restore '{SPACED}' && git add '{SPACED}'"
    # What the plain work-tree hint did is not enough: the next commit fails the same way.
    assert paste(f"qeguard restore '{SPACED}'", cwd=root).returncode == 0
    assert qeguard("verify", "--staged", cwd=root).returncode == 1
    assert paste(restore, cwd=root).returncode == 0
    assert qeguard("verify", "--staged", cwd=root).returncode == 0


def test_hints_from_outside_the_repository_name_it(project: Protected, tmp_path: Path) -> None:
    (project.root / SPACED).write_text("x = 'tampered'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = qeguard("-C", project.root, "verify", "--format", "json", cwd=elsewhere)
    restore, _ = fixes(report)["QG-INT-MODIFIED"]
    assert restore == shlex.join(["qeguard", "-C", str(project.root), "restore", SPACED])
    assert paste(restore, cwd=elsewhere).returncode == 0
    assert qeguard("-C", project.root, "verify", cwd=elsewhere).returncode == 0


def test_hints_quote_every_word(tmp_path: Path) -> None:
    root = tmp_path / "my repo"
    h = Hints(root=root, cwd=root / "a b", staged=False)
    assert h.restore("a b/$(rm -rf).py") == "qeguard restore '$(rm -rf).py'"
    assert h.sign("core") == "qeguard sign --tier core --key KEY && git add ../.qeguard"
    assert h.path("x y/z.py") == "'../x y/z.py'"
    staged = Hints(root=root, cwd=root, staged=True)
    assert staged.chmod("s.sh", executable=False) == "chmod -x s.sh && git add s.sh"
    # No folder known (library callers): repository paths as they are.
    assert Hints().restore("a.py") == "qeguard restore a.py"


def test_paths_that_look_like_options_or_patterns_stay_paths(tmp_path: Path) -> None:
    h = Hints(root=tmp_path, cwd=tmp_path, staged=True)
    assert h.restore("-rf.py") == "qeguard restore ./-rf.py && git add ./-rf.py"
    assert h.stage("data[1].csv") == "git add ':(literal)data[1].csv'"
    assert h.chmod("-x.sh", executable=True) == "chmod +x ./-x.sh && git add ./-x.sh"


def test_a_pattern_like_path_hint_works_in_a_real_shell(project: Protected) -> None:
    odd = "src/pkg/a[1].py"
    (project.root / odd).write_text("x = 1\n")
    (project.root / "src/pkg/a1.py").write_text("y = 1\n")  # what `a[1].py` also matches
    command = Hints(root=project.root, cwd=project.root, staged=True).stage(odd)
    assert paste(command, cwd=project.root).returncode == 0
    staged = git_run(project.root, "diff", "--cached", "--name-only").splitlines()
    assert staged == [odd]  # as a pattern, `git add 'src/pkg/a[1].py'` takes a1.py too
