"""A signed, committed repository for the restore, watch and status tests."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import KeyPair, git_run, write_files
from gitguard import qg

FILES: dict[str, str | bytes] = {
    "src/pkg/__init__.py": "",
    "src/pkg/core/model.py": "def predict(x):\n    return 2 * x\n",
    "src/pkg/core/run.sh": "#!/bin/sh\necho run\n",
    "src/pkg/util.py": "HELPER = 1\n",
    "docs/guide.md": "# Guide\n",
    "notes.txt": "not protected\n",
    ".gitignore": "*.pyc\n__pycache__/\n",
}


def cli(root: Path, *args: str | Path) -> tuple[int, str, str]:
    r = qg(root, *args)
    return r.code, r.out, r.err


def protect(root: Path, key: KeyPair, *, commit: bool = True) -> None:
    """Files (one executable, one symlink), the qemlflow preset, `key` trusted and signing."""
    write_files(root, FILES)
    os.chmod(root / "src/pkg/core/run.sh", 0o755)
    os.symlink("model.py", root / "src/pkg/core/link.py")
    for args in (
        ("init", "--preset", "qemlflow"),
        ("trust", "add", key.name, key.public, "--tiers", "core,middle"),
        ("sign", "--key", key.private),
    ):
        code, out, err = cli(root, *args)
        assert code == 0, (args, out, err)
    if commit:
        git_run(root, "add", "-A")
        git_run(root, "commit", "-q", "-m", "protected")


def integrity_findings(root: Path) -> list[str]:
    """`rule path` for every QG-INT finding `qeguard verify` reports now."""
    from qeguard.integrity.gate import run_verify

    report = run_verify(root)
    return sorted(
        f"{f.rule} {f.location.path if f.location else ''}"
        for f in report.findings
        if f.rule.startswith("QG-INT")
    )
