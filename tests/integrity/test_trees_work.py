"""The fast paths of guard.scan and guard.manifest give the same answers as the plain ones.

Large scans hash in forked workers that open files relative to folder descriptors;
small ones use threads and `observe_path`. Both must agree on every kind of path.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from qeguard.errors import EnvelopeError
from qeguard.integrity.manifest import Entry, Kind, format_list, parse_list
from qeguard.integrity.trees import work as scan
from qeguard.integrity.trees.base import Observed, Seen, hash_bytes
from qeguard.integrity.trees.work import FolderCheck, WorkTree, digest_fd, observe_path


def _tree(root: Path) -> list[str]:
    """Enough files for the forked path, plus every odd case next to them."""
    rng = random.Random(7)
    paths = []
    for i in range(scan._FORK_MIN + 300):
        rel = f"p{i % 7}/m{i % 13}/f{i}.py"
        full = root / rel
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(rng.randbytes(rng.randint(0, 3000)))
        if i % 50 == 0:
            full.chmod(0o755)
        paths.append(rel)
    (root / "real").mkdir()
    (root / "real" / "inside.txt").write_bytes(b"in\n")
    (root / "linkdir").symlink_to("real")
    (root / "p0" / "link.py").symlink_to("m0")
    (root / "crlf.txt").write_bytes(b"a\r\nb\r\n")
    (root / "big.bin").write_bytes(rng.randbytes(3 << 20))
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo")
        paths.append("fifo")
    paths += [
        "real/inside.txt",
        "linkdir/inside.txt",
        "linkdir",
        "p0/link.py",
        "crlf.txt",
        "big.bin",
        "real",
        "gone.txt",
        "p0/gone/x.py",
        "big.bin/x",
    ]
    return sorted(paths)


@pytest.mark.parametrize("normalize_eol", [False, True])
def test_forked_and_threaded_scans_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, normalize_eol: bool
) -> None:
    paths = _tree(tmp_path)
    forked = WorkTree(tmp_path, normalize_eol=normalize_eol).observe(paths)
    monkeypatch.setattr(scan, "_FORK", None)
    threaded = WorkTree(tmp_path, normalize_eol=normalize_eol).observe(paths)
    assert forked == threaded
    one_by_one = {
        p: observe_path(
            str(tmp_path), p, normalize_eol=normalize_eol, dir_ok=FolderCheck(str(tmp_path))
        )
        for p in paths
    }
    assert threaded == one_by_one
    assert forked["linkdir/inside.txt"] == Observed(
        seen=Seen.OTHER, error="a parent folder is a symlink"
    )
    assert forked["real/inside.txt"].sha256 == hashlib.sha256(b"in\n").hexdigest()
    assert forked["p0/link.py"].seen is Seen.SYMLINK
    assert forked["linkdir"].seen is Seen.SYMLINK
    assert forked["real"].seen is Seen.DIRECTORY
    assert forked["gone.txt"].seen is Seen.MISSING
    assert forked["p0/gone/x.py"].seen is Seen.MISSING
    assert forked["big.bin/x"].seen is Seen.MISSING
    assert forked["p0/m0/f0.py"].mode == "100755"
    assert forked["crlf.txt"].sha256 == hash_bytes(b"a\r\nb\r\n", normalize_eol=normalize_eol)
    if "fifo" in forked:
        assert forked["fifo"].seen is Seen.OTHER


def test_observe_ahead_then_observe(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    plain = WorkTree(tmp_path).observe(paths)
    tree = WorkTree(tmp_path)
    ahead = [*paths[100:], "not/asked.py"]
    assert len(ahead) >= scan._FORK_MIN  # large enough to run in the background
    tree.observe_ahead(ahead)
    assert tree._ahead is not None or scan._FORK is None
    asked = paths[:200]  # half observed ahead, half not
    assert tree.observe(asked) == {p: plain[p] for p in asked}
    assert tree._ahead is None


@pytest.mark.parametrize("normalize_eol", [False, True])
def test_digest_fd_streams_like_hash_bytes(tmp_path: Path, normalize_eol: bool) -> None:
    rng = random.Random(3)
    samples = [
        b"",
        b"\r",
        b"\r\n" * 40,
        b"x" + b"\r\n" * 9000,
        b"x\r" * 9000,
        b"\0\r\n" + b"a\r\n" * 9000,
        bytes(rng.choice(b"ab\r\n") for _ in range(40000)),
        b"a" * 7999 + b"\r" + b"\r\n" * 9000,
    ]
    for i, data in enumerate(samples):
        path = tmp_path / f"s{i}"
        path.write_bytes(data)
        # Buffers of 8192 or 8193 bytes cut CRLFs at chunk ends (the first chunk must
        # hold git's 8000-byte binary check); a wrong size hint must not matter.
        for size, hint in ((8192, 0), (8193, len(data)), (1 << 16, len(data)), (8192, 10**9)):
            fd = os.open(path, os.O_RDONLY)
            try:
                got = digest_fd(fd, hint, normalize_eol=normalize_eol, buffer=bytearray(size))
            finally:
                os.close(fd)
            assert got == hash_bytes(data, normalize_eol=normalize_eol), (i, size, hint)


def test_parse_list_fast_path_round_trips_odd_paths() -> None:
    digest = "ab" * 32
    paths = [
        "a b",
        'q"uote',
        "back\\slash",
        "tab\tx",
        "\u00e9t\u00e9",
        "line\u2028sep",
        "bad\udcff",
        "z/y",
    ]
    entries = [Entry(path=p, sha256=digest, mode="100644", kind=Kind.FILE) for p in paths]
    data = format_list(entries)
    assert sorted(parse_list(data, source="t"), key=lambda e: e.path) == sorted(
        entries, key=lambda e: e.path
    )


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"D 100644 file b\nD 100644 file a\n", 2),
        (b"D 100644 file a\nD 100644 symlink b\n", 2),
        (b'D 100644 file a\nD 100644 file "bad\n', 2),
        (b"D 100644 file a\nnope\n", 2),
        (b"D 100644 file a\nD 100644 file a\n", 2),
    ],
)
def test_parse_list_errors_name_the_line(body: bytes, line: int) -> None:
    with pytest.raises(EnvelopeError) as err:
        parse_list(body.replace(b"D", b"cd" * 32), source="x.list")
    assert err.value.where == f"x.list:{line}"


def test_listing_ahead_equals_list_paths(tmp_path: Path) -> None:
    import subprocess

    from qeguard.git import GitRepo

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*.log\n")
    for rel in ("a.py", "d/b.py", "d/e/c.txt", "new.py", "skip.log", "d/e/x y.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    subprocess.run(["git", "-C", str(tmp_path), "add", "a.py", "d"], check=True)
    repo = GitRepo(tmp_path)
    expected = repo.list_paths()
    assert "new.py" in expected and "skip.log" not in expected
    assert repo.start_list_paths()() == expected
    tree = WorkTree(tmp_path, list_paths=repo.list_paths, start_listing=repo.start_list_paths)
    tree.list_ahead()
    assert tree.candidates() == expected
    assert tree.candidates() == expected  # the next call lists again


def test_no_fork_while_other_threads_run(tmp_path: Path) -> None:
    import threading

    paths = _tree(tmp_path)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not scan._use_processes(len(paths))
        tree = WorkTree(tmp_path)
        tree.observe_ahead(paths)
        assert tree._ahead is None
        assert tree.observe(paths)["real/inside.txt"].seen is Seen.FILE
    finally:
        stop.set()
        other.join()
