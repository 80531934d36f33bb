"""`qeguard deps --fix` on lock files: the real uv relocks a project offline (its index a
folder of wheels built here); without the tool, qeguard says what to run."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import DATA
from qeguard.cli.main import main

BIN = Path(sys.executable).parent


def _wheel(folder: Path, name: str, version: str) -> None:
    """A minimal pure-Python wheel (PEP 427), enough for a resolver."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: qeguard-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)


@pytest.fixture
def uv_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not installed; install the test extra: pip install '.[test]'")
    monkeypatch.setenv("PATH", f"{Path(uv).parent}{os.pathsep}{os.environ['PATH']}")
    # uv stays offline and away from the user's cache (conftest isolates its config): a
    # local wheel folder is the index.
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_PYTHON", sys.executable)
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    root = tmp_path / "app"
    wheels = root / "wheels"
    wheels.mkdir(parents=True)
    _wheel(wheels, "demo", "1.0")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["demo>=1.0"]\n\n[tool.uv]\nno-index = true\n'
        'find-links = ["wheels"]\npackage = false\n'
    )
    subprocess.run([uv, "lock"], cwd=root, check=True, capture_output=True)
    assert 'version = "1.0"' in (root / "uv.lock").read_text()
    _wheel(wheels, "demo", "2.0")  # the fixed release appears on the index
    osv = tmp_path / "osv"
    osv.mkdir()
    (osv / "GHSA-demo.json").write_text(
        json.dumps(
            {
                "id": "GHSA-demo-0000-0000",
                "modified": "2024-10-01T00:00:00Z",
                "summary": "demo before 2.0 is vulnerable",
                "database_specific": {"severity": "HIGH"},
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "demo"},
                        "ranges": [
                            {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}
                        ],
                    }
                ],
            }
        )
    )
    return root


def _fix(root: Path, capsys) -> tuple[int, dict, str]:
    code = main(
        ["-C", str(root), "deps", "--fix", "--db", str(root.parent / "osv"),
         str(root / "uv.lock"), "--format", "json"]
    )  # fmt: skip
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def test_fix_runs_uv_lock_upgrade_package(uv_project: Path, capsys):
    code, doc, err = _fix(uv_project, capsys)
    assert "relocked with `uv lock --upgrade-package demo==2.0`" in err
    lock = (uv_project / "uv.lock").read_text()
    assert 'name = "demo"\nversion = "2.0"' in lock
    assert code == 0 and not [f for f in doc["findings"] if f["rule"] == "QG-DEP-VULN"]
    assert doc["fixes"] == [
        {"package": "demo", "version": "1.0", "fixed": "2.0", "path": "uv.lock", "applied": True}
    ]


def test_fix_without_uv_says_what_to_run(uv_project: Path, capsys, monkeypatch):
    empty = uv_project.parent / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    before = (uv_project / "uv.lock").read_bytes()
    code, doc, err = _fix(uv_project, capsys)
    # Run from outside the project (-C): the folder to run in is absolute.
    assert (
        f"uv is not installed; run: cd {uv_project} && uv lock --upgrade-package demo==2.0" in err
    )
    assert (uv_project / "uv.lock").read_bytes() == before
    assert code == 1 and doc["fixes"][0]["applied"] is False


def test_fix_on_poetry_without_poetry_says_what_to_run(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no poetry here
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copy(DATA / "deps" / "poetry" / "poetry.lock", tmp_path / "poetry.lock")
    main(["-C", str(tmp_path), "deps", "--fix", str(tmp_path / "poetry.lock"), "-f", "json"])
    err = capsys.readouterr().err
    assert "poetry is not installed" in err and "poetry update black certifi" in err


def test_the_command_to_run_by_hand_pastes_from_a_subfolder(tmp_path: Path, capsys, monkeypatch):
    """From a subfolder of the project, a lock file in a folder whose name has a space:
    the printed command, pasted into a real shell where the user is, runs the locker in
    the lock file's folder with the right arguments."""
    root = tmp_path / "my project"
    (root / "locks dir").mkdir(parents=True)
    (root / "docs").mkdir()
    shutil.copy(DATA / "deps" / "poetry" / "poetry.lock", root / "locks dir" / "poetry.lock")
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # no poetry for qeguard to run
    monkeypatch.chdir(root / "docs")
    main(["-C", str(root), "deps", "--fix", "../locks dir/poetry.lock", "-f", "json"])
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "poetry is not installed" in ln)
    command = line.split("; run: ", 1)[1]
    assert command.startswith("cd '../locks dir' && poetry update ") and " certifi " in command
    # The user's shell, with a poetry that records where it ran and with what.
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "poetry").write_text('#!/bin/sh\npwd > "$RECORD"\necho "$@" >> "$RECORD"\n')
    (tools / "poetry").chmod(0o755)
    record = tmp_path / "record.txt"
    subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=root / "docs",
        env={"PATH": f"{tools}{os.pathsep}/usr/bin:/bin", "RECORD": str(record)},
        check=True,
    )
    assert record.read_text().splitlines() == [str(root / "locks dir"), command.split("poetry ")[1]]
