"""A repository protected with the qemlflow preset and two trusted core signers, for the
git layer tests (staged hook, CI with --trust-ref, attacks, overrides, hooks)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import KeyPair, git_run, write_files
from qeguard.cli.console import Console
from qeguard.cli.main import main
from qeguard.report import Report

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


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def qg(root: Path, *args: str | Path) -> Run:
    """qeguard in-process, with `-C root`."""
    out, err = io.StringIO(), io.StringIO()
    code = main(["-C", str(root), *(str(a) for a in args)], Console(out, err))
    return Run(code, out.getvalue(), err.getvalue())


def report(root: Path, *args: str | Path) -> tuple[int, dict[str, Any]]:
    """`qeguard verify ARGS --format json`: exit code and the JSON report."""
    r = qg(root, "verify", *args, "--format", "json")
    assert r.code in (0, 1), r.text
    return r.code, json.loads(r.out)


def rules(doc: dict[str, Any], *, active: bool = True) -> list[str]:
    """`RULE path` of the report's findings (only unsuppressed ones by default)."""
    return sorted(
        f"{f['rule']} {(f['location'] or {}).get('path', '')}".strip()
        for f in doc["findings"]
        if not active or f["suppressed"] is None
    )


def failing(doc: dict[str, Any]) -> list[str]:
    """Active findings at or above the report's fail_on, as the report model judges them."""
    report = Report.from_dict(doc)
    return sorted(f.rule for f in report.findings if report.is_failing(f))


def with_bare_remote(tmp_path: Path, repo: Path) -> Path:
    """A bare `origin` for `repo`, with main pushed to it."""
    remote = tmp_path / "remote.git"
    git_run(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git_run(repo, "remote", "add", "origin", str(remote))
    git_run(repo, "push", "-q", "origin", "main")
    return remote


def sign(root: Path, key: KeyPair, *tiers: str) -> None:
    args: list[str | Path] = ["sign", "--key", key.private]
    for t in tiers:
        args += ["--tier", t]
    r = qg(root, *args)
    assert r.code == 0, r.text


def commit(root: Path, message: str, paths: Sequence[str] = ("-A",)) -> str:
    git_run(root, "add", *paths)
    git_run(root, "commit", "-q", "-m", message)
    return git_run(root, "rev-parse", "HEAD").strip()


def protect(root: Path, alice: KeyPair, bob: KeyPair) -> str:
    """Files, qemlflow policy, alice and bob trusted for core and middle, both signed,
    committed on main. Returns the commit."""
    write_files(root, FILES)
    for args in (
        ("init", "--preset", "qemlflow"),
        ("trust", "add", alice.name, alice.public, "--tiers", "core,middle"),
        ("trust", "add", bob.name, bob.public, "--tiers", "core,middle"),
    ):
        r = qg(root, *args)
        assert r.code == 0, (args, r.text)
    sign(root, alice)
    sign(root, bob)
    return commit(root, "protect")
