"""Fixtures over the helpers package: real temporary git repositories, real keys, the CLI
in-process, and an environment that keeps every test away from the user's own folders."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import KeyPair, Run, git_run, init_repo, make_keypair, run_qeguard, write_files


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Tests never read or write the user's real config (keys), cache (the vulnerability
    # database and its index) or state (the internal-error log) folders, nor pick up a
    # developer's qeguard or CI settings. A MonkeyPatch of its own: a test calling
    # `monkeypatch.undo()` must not undo this.
    with pytest.MonkeyPatch.context() as mp:
        for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
            mp.setenv(var, str(tmp_path_factory.mktemp(var.lower())))
        for name in list(os.environ):
            if name.startswith(("QEGUARD_", "GITHUB_")) and name != "QEGUARD_ONLINE_TESTS":
                mp.delenv(name, raising=False)
        for name in ("CI", "NO_COLOR", "FORCE_COLOR"):
            mp.delenv(name, raising=False)
        # Scans refresh a stale vulnerability database from the network by default; tests
        # never reach the internet, so they scan offline unless a test serves the database
        # itself on 127.0.0.1 (tests/deps/test_update.py unsets this).
        mp.setenv("QEGUARD_OFFLINE", "1")
        yield


@pytest.fixture
def git() -> Callable[..., str]:
    """`git(root, *args)`: run real git in a folder (stdout as text)."""
    return git_run


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository (branch main, identity set, no line-end conversion)."""
    return init_repo(tmp_path / "repo")


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[[str], Path]:
    """`make_repo(name)`: another empty git repository under tmp_path."""
    return lambda name: init_repo(tmp_path / name)


@pytest.fixture
def write() -> Callable[[Path, dict[str, str | bytes]], None]:
    """`write(root, {"a/b.py": "text", ...})`: create files (and folders)."""
    return write_files


@pytest.fixture
def keypair(tmp_path: Path) -> Callable[..., KeyPair]:
    """`keypair(name, passphrase=None)`: a fresh Ed25519 key outside any repository."""
    return lambda name, passphrase=None: make_keypair(tmp_path / "keys", name, passphrase)


@pytest.fixture
def run_cli() -> Callable[..., Run]:
    """`run_cli(*args, cwd=ROOT)`: qeguard in-process; `cwd` becomes `-C ROOT`."""
    return run_qeguard


@pytest.fixture
def chdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """`chdir(path)`: change the working folder for this test only."""
    yield monkeypatch.chdir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `online` reach the network: skipped unless QEGUARD_ONLINE_TESTS=1."""
    if os.environ.get("QEGUARD_ONLINE_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="needs the network: set QEGUARD_ONLINE_TESTS=1")
    for item in items:
        if item.get_closest_marker("online") is not None:
            item.add_marker(skip)


def _real_user_folders() -> dict[str, float | None]:
    """The user's own qeguard folders (as platformdirs names them before any test runs)
    and their modification times, None when absent."""
    from platformdirs import user_cache_path, user_config_path, user_state_path

    out: dict[str, float | None] = {}
    for path in (
        user_cache_path("qeguard"),
        user_config_path("qeguard"),
        user_state_path("qeguard"),
    ):
        out[str(path)] = path.stat().st_mtime if path.exists() else None
    return out


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_FOLDERS] = _real_user_folders()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any test touched the user's real cache, config or state folder."""
    before = session.config.stash.get(_FOLDERS, None)
    if before is None:
        return
    touched = [p for p, when in _real_user_folders().items() if when != before[p]]
    if touched:
        session.config.get_terminal_writer().line(
            f"tests wrote to the user's real folders: {', '.join(touched)}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_FOLDERS = pytest.StashKey[dict[str, float | None]]()
