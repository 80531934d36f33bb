"""Shared fixtures: real temporary git repositories, real keys, the CLI in-process.

Kept general on purpose: the trust core, git layer and watch tests all build on them.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from qeguard.cli.console import Console
from qeguard.cli.main import main
from qeguard.integrity.keys import generate


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `qeguard keygen` without --out and `sign` without --key use the user config folder;
    # tests must never read or write the real one, nor pick up a developer's key settings.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    # Internal errors are logged under the state folder: keep test runs out of the real one.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    for name in ("QEGUARD_KEY", "QEGUARD_KEY_PASSPHRASE", "CI", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)


def git_run(root: Path, *args: str, check: bool = True) -> str:
    """Run real git in `root` and return stdout (text)."""
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


@pytest.fixture
def git() -> Callable[..., str]:
    """`git(root, *args)`: run real git in a folder (stdout as text)."""
    return git_run


def init_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git_run(root, "init", "-q", "-b", "main")
    for key, value in (
        ("user.name", "Test User"),
        ("user.email", "test@example.com"),
        ("core.autocrlf", "false"),
        ("commit.gpgsign", "false"),
    ):
        git_run(root, "config", key, value)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository (branch main, identity set, no line-end conversion)."""
    return init_repo(tmp_path / "repo")


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[[str], Path]:
    """`make_repo(name)`: another empty git repository under tmp_path."""
    return lambda name: init_repo(tmp_path / name)


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)


@pytest.fixture
def write() -> Callable[[Path, dict[str, str | bytes]], None]:
    """`write(root, {"a/b.py": "text", ...})`: create files (and folders)."""
    return write_files


@dataclass(frozen=True)
class KeyPair:
    name: str
    private: Path  # OpenSSH private key, mode 0600
    public: Path  # `<private>.pub`
    line: str  # the `ssh-ed25519 AAAA... name` line


@pytest.fixture
def keypair(tmp_path: Path) -> Callable[..., KeyPair]:
    """`keypair(name, passphrase=None)`: a fresh Ed25519 key outside any repository."""
    folder = tmp_path / "keys"

    def make(name: str, passphrase: bytes | None = None) -> KeyPair:
        folder.mkdir(mode=0o700, exist_ok=True)
        private, line = generate(name, passphrase)
        path = folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        os.chmod(path, 0o600)  # independent of the umask
        pub = folder / f"{name}.pub"
        pub.write_text(line + "\n", encoding="utf-8")
        return KeyPair(name=name, private=path, public=pub, line=line)

    return make


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli() -> Callable[..., CliResult]:
    """`run_cli(*args, cwd=ROOT)`: qeguard.cli.main.main in-process; `cwd` becomes `-C ROOT`."""

    def run(*args: str | Path, cwd: Path | None = None) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        argv = [str(a) for a in args]
        if cwd is not None:
            argv = ["-C", str(cwd), *argv]
        code = main(argv, Console(out, err))
        return CliResult(code=code, out=out.getvalue(), err=err.getvalue())

    return run


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
