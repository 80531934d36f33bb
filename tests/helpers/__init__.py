"""Test helpers: one protected-repository builder, one in-process CLI runner, real git.

Everything here runs the real thing: real `git` in temporary folders, real Ed25519 keys,
`qeguard.cli.main.main` in-process (so tests read what a user would read).

    repo = init_repo(tmp_path / "repo")
    p = Protected.build(repo, [alice, bob])        # qemlflow preset, both signed, committed
    p.write({"src/pkg/core/model.py": "x = 2\n"})
    assert p.cli("verify").code == 1
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.cli.main import main
from qeguard.integrity.dsse import Envelope
from qeguard.integrity.gate import run_verify
from qeguard.integrity.keys import generate
from qeguard.integrity.layout import envelope_path, list_path
from qeguard.integrity.manifest import Payload
from qeguard.report import Report

TESTS = Path(__file__).resolve().parents[1]
DATA = TESTS / "data"  # inputs the tests read: real lock files, the SARIF schema, ...
PROJECT = TESTS.parent  # this repository's checkout

# The project files of a protected repository under the qemlflow preset: one core module,
# one middle module, one outer document and one unprotected file.
FILES: dict[str, str | bytes] = {
    "src/pkg/__init__.py": "",
    "src/pkg/core/model.py": "def predict(x):\n    return 2 * x\n",
    "src/pkg/core/train.py": "EPOCHS = 10\n",
    "src/pkg/util.py": "HELPER = 1\n",
    "docs/guide.md": "# Guide\n",
    "notes.txt": "not protected\n",
    ".gitignore": "*.pyc\n__pycache__/\n",
}
CORE_FILE = "src/pkg/core/model.py"
MIDDLE_FILE = "src/pkg/util.py"
# With `special=True`: an executable core script and a core symlink.
EXEC_FILE = "src/pkg/core/run.sh"
LINK_FILE = "src/pkg/core/link.py"


# --- git --------------------------------------------------------------------------------


def git_run(root: Path, *args: str | Path, check: bool = True) -> str:
    """Run real git in `root` and return stdout (text)."""
    proc = subprocess.run(
        ["git", *map(str, args)], cwd=root, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(map(str, args))} failed: {proc.stderr}")
    return proc.stdout


def init_repo(root: Path) -> Path:
    """An empty repository: branch main, an identity, no line-end conversion, no signing."""
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


def commit(root: Path, message: str = "change", paths: Sequence[str] = ("-A",)) -> str:
    """Stage `paths` (everything by default), commit, and return the new commit id."""
    git_run(root, "add", *paths)
    git_run(root, "commit", "-q", "-m", message)
    return git_run(root, "rev-parse", "HEAD").strip()


def with_bare_remote(tmp_path: Path, repo: Path) -> Path:
    """A bare `origin` for `repo`, with main pushed to it."""
    remote = tmp_path / "remote.git"
    git_run(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git_run(repo, "remote", "add", "origin", str(remote))
    git_run(repo, "push", "-q", "origin", "main")
    return remote


def write_files(root: Path, files: Mapping[str, str | bytes]) -> None:
    """Create files (and their folders) under `root`."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)


# --- keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    name: str
    private: Path  # OpenSSH private key, mode 0600
    public: Path  # `<private>.pub`
    line: str  # the `ssh-ed25519 AAAA... name` line


def make_keypair(folder: Path, name: str, passphrase: bytes | None = None) -> KeyPair:
    """A fresh Ed25519 key pair in `folder` (made 0700), never inside a repository."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, line = generate(name, passphrase)
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    os.chmod(path, 0o600)  # independent of the umask
    pub = folder / f"{name}.pub"
    pub.write_text(line + "\n", encoding="utf-8")
    return KeyPair(name=name, private=path, public=pub, line=line)


# --- the CLI ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What one qeguard command did: exit code, stdout, stderr."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def json(self) -> Any:
        return json.loads(self.out)

    def __iter__(self) -> Iterator[Any]:
        """`code, out, err = run_qeguard(...)`."""
        return iter((self.code, self.out, self.err))


def run_qeguard(*args: str | Path, cwd: Path | None = None) -> Run:
    """`qeguard ARGS` in-process; `cwd` becomes `-C cwd` (the working folder is unchanged)."""
    out, err = io.StringIO(), io.StringIO()
    argv = [str(a) for a in args]
    if cwd is not None:
        argv = ["-C", str(cwd), *argv]
    code = main(argv, Console(out, err))
    return Run(code=int(code), out=out.getvalue(), err=err.getvalue())


# --- reading reports ----------------------------------------------------------------------


def rules(doc: Mapping[str, Any], *, active: bool = True) -> list[str]:
    """`RULE path` of a JSON report's findings (only unsuppressed ones by default)."""
    return sorted(
        f"{f['rule']} {(f['location'] or {}).get('path', '')}".strip()
        for f in doc["findings"]
        if not active or f["suppressed"] is None
    )


def failing(doc: Mapping[str, Any]) -> list[str]:
    """Rules of the active findings at or above the report's fail_on, as the report model
    judges them."""
    report = Report.from_dict(doc)
    return sorted(f.rule for f in report.findings if report.is_failing(f))


# --- the protected repository -------------------------------------------------------------


class Protected:
    """A git repository protected by qeguard, built through the real CLI.

    `build` writes the files, runs `qeguard init` (or writes a given policy), trusts each
    signer for `tiers`, signs with every signer and commits. Methods act on it the way a
    user would.
    """

    def __init__(self, root: Path, signers: Sequence[KeyPair]):
        self.root = root
        self.signers = list(signers)

    @classmethod
    def build(
        cls,
        root: Path,
        signers: Sequence[KeyPair],
        *,
        files: Mapping[str, str | bytes] = FILES,
        special: bool = False,
        preset: str = "qemlflow",
        policy: str | None = None,
        tiers: str = "core,middle",
        sign: bool = True,
        commit: bool = True,
    ) -> Protected:
        """`special` adds an executable core script and a core symlink; `policy` (TOML)
        replaces `qeguard init --preset`."""
        if not (root / ".git").exists():
            init_repo(root)
        write_files(root, files)
        if special:
            write_files(root, {EXEC_FILE: "#!/bin/sh\necho run\n"})
            os.chmod(root / EXEC_FILE, 0o755)
            os.symlink("model.py", root / LINK_FILE)
        p = cls(root, signers)
        if policy is None:
            p.ok("init", "--preset", preset)
        else:
            write_files(root, {".qeguard/policy.toml": policy})
        for k in signers:
            p.ok("trust", "add", k.name, k.public, "--tiers", tiers)
        if sign:
            p.sign()
        if commit:
            p.commit("protect")
        return p

    def signer(self, name: str) -> KeyPair:
        """The signer called `name`."""
        (key,) = (k for k in self.signers if k.name == name)
        return key

    def cli(self, *args: str | Path) -> Run:
        """`qeguard -C ROOT ARGS` in-process."""
        return run_qeguard(*args, cwd=self.root)

    def ok(self, *args: str | Path) -> Run:
        """Like `cli`, asserting exit 0."""
        r = self.cli(*args)
        assert r.code == 0, (args, r.text)
        return r

    def sign(self, *keys: KeyPair, tier: str | None = None) -> None:
        """`qeguard sign` with each key (default: every signer), asserting success."""
        for k in keys or tuple(self.signers):
            sign(self.root, k, *([tier] if tier else []))

    def commit(self, message: str = "change", paths: Sequence[str] = ("-A",)) -> str:
        return commit(self.root, message, paths)

    def git(self, *args: str | Path, check: bool = True) -> str:
        return git_run(self.root, *args, check=check)

    def write(self, files: Mapping[str, str | bytes]) -> None:
        write_files(self.root, files)

    def verify(self, **kw: Any) -> Report:
        """`run_verify` in-process (strict unless `local=True`)."""
        kw.setdefault("local", False)
        return run_verify(self.root, **kw)

    def report(self, *args: str | Path) -> tuple[int, dict[str, Any]]:
        """`qeguard verify ARGS --format json`: exit code and the JSON report."""
        return verify_json(self.root, *args)

    def envelope(self, tier: str) -> Envelope:
        return Envelope.from_bytes((self.root / envelope_path(tier)).read_bytes(), source="e")

    def payload(self, tier: str) -> Payload:
        return Payload.from_bytes(self.envelope(tier).payload, source="p")

    def list_bytes(self, tier: str) -> bytes:
        return (self.root / list_path(tier)).read_bytes()


# --- shorthands for the git-layer tests ------------------------------------------------------


def protect(root: Path, *signers: KeyPair, special: bool = False, commit: bool = True) -> Protected:
    """`Protected.build(root, signers)`: the qemlflow preset, every signer trusted for core
    and middle, all signed, committed."""
    return Protected.build(root, signers, special=special, commit=commit)


def sign(root: Path, key: KeyPair, *tiers: str) -> None:
    """`qeguard sign --key KEY [--tier T ...]`, asserting success."""
    args: list[str | Path] = ["sign", "--key", key.private]
    for t in tiers:
        args += ["--tier", t]
    r = run_qeguard(*args, cwd=root)
    assert r.code == 0, r.text


def verify_json(root: Path, *args: str | Path) -> tuple[int, dict[str, Any]]:
    """`qeguard verify ARGS --format json`: exit code and the JSON report."""
    r = run_qeguard("verify", *args, "--format", "json", cwd=root)
    assert r.code in (0, 1), r.text
    return r.code, json.loads(r.out)


def integrity_findings(root: Path) -> list[str]:
    """`rule path` for every QG-INT finding `qeguard verify` reports now."""
    report = run_verify(root)
    return sorted(
        f"{f.rule} {f.location.path if f.location else ''}"
        for f in report.findings
        if f.rule.startswith("QG-INT")
    )
