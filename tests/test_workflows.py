"""The project's own workflows and composite action pass the offline checkers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PROJECT

ROOT = PROJECT
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the test extra: pip install '.[test]'")
    return found


def test_expected_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"file-protection.yml", "dependencies.yml", "ci.yml"} <= names


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_schema(workflow: Path) -> None:
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_action_matches_schema() -> None:
    result = subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-actions",
            str(ROOT / "action.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing() -> None:
    result = subprocess.run(
        [
            _tool("zizmor"),
            "--offline",
            "--no-progress",
            str(ROOT / ".github" / "workflows"),
            str(ROOT / "action.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


def test_actions_are_pinned_by_commit() -> None:
    for path in [*WORKFLOWS, ROOT / "action.yml"]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "uses:" in line and not line.strip().startswith("#"):
                ref = line.split("uses:", 1)[1].split("#", 1)[0].strip()
                if ref.startswith("./"):
                    continue
                sha = ref.rpartition("@")[2]
                assert len(sha) == 40 and all(c in "0123456789abcdef" for c in sha), (
                    f"{path.name}:{n}: {ref} is not pinned to a commit"
                )


# -- what the steps do, run for real -------------------------------------------------------


def _python_shim(folder: Path, log: Path) -> None:
    """A `python` on PATH that makes venvs whose python only records what pip installs:
    the install steps run for real, without an index."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "python"
    shim.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then\n'
        '  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0\n'
        "fi\n"
        f'echo "$@" >> "{log}"\n'
    )
    shim.chmod(0o755)


def test_file_protection_installs_the_verifier_from_the_base_commit(tmp_path: Path) -> None:
    """A pull request that edits the verifier is checked by the base's verifier: the
    install step checks out the base commit and pip-installs that, not the change."""
    from helpers import git_run, init_repo, write_files
    from helpers.workflows import FILE_PROTECTION, run_step

    repo = init_repo(tmp_path / "repo")
    write_files(repo, {"guard/verifier.py": "STRICT = True\n"})
    git_run(repo, "add", "-A")
    git_run(repo, "commit", "-q", "-m", "base")
    base = git_run(repo, "rev-parse", "HEAD").strip()
    write_files(repo, {"guard/verifier.py": "STRICT = False  # the change under test\n"})
    git_run(repo, "commit", "-q", "-am", "weaken the verifier")
    runner, log = tmp_path / "runner", tmp_path / "pip.log"
    shims = tmp_path / "shims"
    _python_shim(shims, log)
    proc = run_step(
        FILE_PROTECTION,
        "Install qeguard from the base commit",
        cwd=repo,
        runner_temp=runner,
        contexts={"github.event_name": "pull_request", "github.event.pull_request.base.sha": base},
        env={"PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = log.read_text().split()
    assert installed[:3] == ["-m", "pip", "install"] and installed[-1] == str(
        runner / "qeguard-base"
    )
    assert (runner / "qeguard-base" / "guard/verifier.py").read_text() == "STRICT = True\n"
    # ...and that is the `qeguard` the later steps find first on PATH.
    assert (runner / "github_path").read_text().split() == [str(runner / "qeguard-venv/bin")]
    # A base that is not in the clone (a shallow checkout) is an error, not a fallback.
    proc = run_step(
        FILE_PROTECTION,
        "Install qeguard from the base commit",
        cwd=repo,
        runner_temp=tmp_path / "runner2",
        contexts={
            "github.event_name": "pull_request",
            "github.event.pull_request.base.sha": "f" * 40,
        },
        env={"PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"},
    )
    assert proc.returncode == 2 and "not in the clone" in proc.stdout


def test_no_workflow_installs_the_checkout_under_test() -> None:
    for path in [*WORKFLOWS, ROOT / "action.yml"]:
        text = path.read_text()
        for bad in ("pip install .", "pip install -e .", 'pip install "$GITHUB_WORKSPACE"'):
            assert bad not in text, f"{path.name}: {bad}"


def test_action_refuses_to_run_from_the_checkout_under_test(tmp_path: Path) -> None:
    from helpers.workflows import ACTION, run_step

    proc = run_step(
        ACTION,
        "Install qeguard",
        cwd=tmp_path,
        runner_temp=tmp_path / "runner",
        contexts={"inputs.python": sys.executable},
        env={"GITHUB_ACTION_PATH": str(tmp_path / "vendored" / "qeguard")},
    )
    assert proc.returncode == 2 and "pin the action by commit" in proc.stdout


def test_action_on_windows_uses_scripts(tmp_path: Path) -> None:
    """On a Windows runner the venv's interpreter is Scripts/python.exe: the run step
    finds it there (here a shim that records its arguments)."""
    from helpers.workflows import ACTION, run_step

    runner = tmp_path / "runner"
    scripts = runner / "qeguard-venv" / "Scripts"
    scripts.mkdir(parents=True)
    log = tmp_path / "args"
    exe = scripts / "python.exe"
    exe.write_text(f'#!/bin/sh\necho "$@" > "{log}"\n')
    exe.chmod(0o755)
    proc = run_step(
        ACTION,
        "Run qeguard ci",
        cwd=tmp_path,
        runner_temp=runner,
        contexts={
            "inputs.trust-root": "abc123",
            "inputs.sarif": "q.sarif",
            "github.event_name": "pull_request",
            "github.base_ref": "main",
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().split() == [
        "-m", "qeguard", "ci", "--trust-ref", "refs/remotes/origin/main",
        "--trust-root", "abc123", "--format", "sarif", "--output", "q.sarif", "--format", "text",
    ]  # fmt: skip
