"""The working tree's fast paths give the same answers as the plain ones.

A whole-tree scan walks the tree in forked workers (large trees on Linux), in threads
(elsewhere, or while other threads run) or in-process (small trees): all three must
agree with each other and with the plain path-by-path scan (`scan_paths` over git's
listing of candidates and `observe_path`), on every kind of entry: files, executables,
symlinks, missing paths, folders, fifos, paths through a symlinked folder, hostile
names, empty files, a submodule, files that are tracked, untracked or ignored.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from qeguard.errors import EnvelopeError
from qeguard.git import GitRepo
from qeguard.integrity.manifest import (
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    Entry,
    EntryList,
    Kind,
    format_list,
    parse_list,
    path_key,
    read_list,
)
from qeguard.integrity.policy import parse_policy
from qeguard.integrity.trees import scan
from qeguard.integrity.trees.base import Observed, Scan, Seen, hash_bytes, scan_paths
from qeguard.integrity.trees.work import FolderCheck, WorkTree, digest_fd, observe_path

# Two tiers over everything: `top` (the odd cases at the root and `p0/`), `rest` the bulk.
POLICY = """
[[tiers]]
name = "top"
threshold = 1
patterns = ["/*", "p0/**", "*.sh"]

[[tiers]]
name = "rest"
threshold = 1
patterns = ["**"]
"""
HOSTILE = [
    "new\nline.py",
    'q"uote.py',
    "tab\there.py",
    "sp ace.py",
    "-dash.py",
    "\u00e9t\u00e9.py",
    "line\u2028sep.py",
    "bad\udcff.py",  # invalid UTF-8 on disk
    "back\\slash.py",  # a plain name on POSIX (a separator only on Windows)
]


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _make_tree(root: Path, files: int) -> None:
    """A git work tree with `files` plain files in small folders, and every odd case."""
    rng = random.Random(7)
    _git(root, "init", "-q", "-b", "main")
    for i in range(files):
        rel = root / f"p{i % 7}" / f"m{i % 13}" / f"f{i}.py"
        rel.parent.mkdir(parents=True, exist_ok=True)
        rel.write_bytes(rng.randbytes(rng.randint(0, 3000)))
        if i % 50 == 0:
            rel.chmod(0o755)
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    for name in HOSTILE:
        (root / os.fsencode(name).decode("utf-8", "surrogateescape")).write_bytes(b"x\n")
    (root / "p4" / "m4" / "odd\\name.py").write_bytes(b"a backslash, in a folder\n")
    (root / "empty.py").write_bytes(b"")
    (root / "real").mkdir()
    (root / "real" / "inside.txt").write_bytes(b"in\n")
    (root / "linkdir").symlink_to("real")
    (root / "p0" / "link.py").symlink_to("m0")
    (root / "dangling").symlink_to("nowhere")
    (root / "crlf.txt").write_bytes(b"a\r\nb\r\n")
    (root / "crlf.bin").write_bytes(b"\0a\r\nb\r\n")  # binary: git never converts it
    (root / "big.bin").write_bytes(rng.randbytes(3 << 20))
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "gone.txt").write_text("deleted after commit\n")
    (root / "becomes_dir").write_text("a file when signed\n")
    (root / "tracked_ignored.log").write_text("added with -f\n")
    (root / "build").mkdir()
    (root / "build" / "kept.txt").write_text("tracked inside an ignored folder\n")
    _git(root, "add", "-A")
    _git(root, "add", "-f", "tracked_ignored.log", "build/kept.txt")
    sub = root / "vendor" / "sub"
    sub.mkdir(parents=True)
    _git(sub, "init", "-q", "-b", "main")
    (sub / "lib.py").write_text("x = 1\n")
    _git(sub, "add", "-A")
    _git(sub, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", "sub")
    _git(root, "add", "vendor/sub")  # a gitlink in the index
    _git(root, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", "tree")
    # After the commit: what the signed lists will not match.
    (root / "gone.txt").unlink()
    (root / "becomes_dir").unlink()
    (root / "becomes_dir").mkdir()
    (root / "p1" / "m1" / "f1.py").write_bytes(b"changed")
    (root / "untracked.py").write_text("new, not added\n")
    (root / "p2" / "fresh").mkdir()
    (root / "p2" / "fresh" / "deep.py").write_text("new folder\n")
    (root / "p2" / "fresh" / "skip.log").write_text("ignored\n")
    (root / "build" / "out.o").write_bytes(b"ignored folder\n")
    (root / "other.log").write_text("ignored\n")
    (root / "nested").mkdir()  # an untracked repository of its own
    _git(root / "nested", "init", "-q")
    (root / "nested" / "n.py").write_text("y = 2\n")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo")
        os.mkfifo(root / "p3" / "pipe.py")


def _tree(root: Path) -> WorkTree:
    repo = GitRepo(root)
    return WorkTree(
        root,
        list_paths=repo.list_paths,
        start_index=repo.start_index_listing,
        ignored=repo.ignored,
        eol=repo.eol_converted,
        gitlinks=repo.worktree_gitlinks,
    )


# Candidates left off the lists: untracked ones and a tracked one.
UNSIGNED = ("untracked.py", "p2/fresh/deep.py", "p3/m3/f3.py")


def _lists(root: Path, extra: list[str]) -> dict[str, EntryList]:
    """Signed lists as `sign` would make them from the tree, without `UNSIGNED`, plus
    `extra` paths (listed though missing, unsafe or not files) in tier `top`."""
    matcher = parse_policy(POLICY).matcher()
    tree = _tree(root)
    paths = tree.candidates()
    seen = tree.observe(paths)
    by_tier: dict[str, list[Entry]] = {"top": [], "rest": []}
    for p in paths:
        entry = seen[p].as_entry(p)
        tier = matcher.tier_of(p)
        if entry is not None and tier is not None and p not in UNSIGNED:
            by_tier[tier].append(entry)
    digest = "ab" * 32
    for p in extra:
        by_tier["top"].append(Entry(path=p, sha256=digest, mode=MODE_FILE, kind=Kind.FILE))
    # A path signed in the wrong tier: `rest` lists a file the policy gives `top`.
    by_tier["rest"].append(Entry(path="run.sh", sha256=digest, mode=MODE_EXEC, kind=Kind.FILE))
    return {t: read_list(format_list(e), source=t) for t, e in by_tier.items()}


EXTRA = [
    "gone.txt",
    "becomes_dir",
    "linkdir/inside.txt",
    "fifo",
    "big.bin/x",
    "p0/gone/x.py",
    "../escape.py",
    "a//b.py",
    "sub/.git/x",
    "real",
]


def _flatten(found: Scan) -> tuple[dict[str, list[tuple[str, Observed]]], ...]:
    """Every observation of every block, by tier, and the unlisted candidates (missing
    and folder ones dropped: they are never findings)."""
    observed: dict[str, list[tuple[str, Observed]]] = {}
    for tier, block in found.blocks():
        observed.setdefault(tier, []).extend(block.observed())
    unlisted = {
        tier: [(p, o) for p, o in items if o.seen not in (Seen.MISSING, Seen.DIRECTORY)]
        for tier, items in found.unlisted().items()
    }
    return observed, unlisted


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("big")
    _make_tree(root, scan._FORK_MIN + 300)
    yield root


def _scan(
    root: Path, lists: dict[str, EntryList]
) -> tuple[dict[str, list[tuple[str, Observed]]], ...]:
    tier_of = parse_policy(POLICY).matcher().tier_of
    return _flatten(_tree(root).scan(lists, tier_of))


def test_forked_threaded_serial_and_plain_scans_agree(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = _lists(big, EXTRA)
    tier_of = parse_policy(POLICY).matcher().tier_of
    assert scan._use_processes(sum(len(e) for e in lists.values())) or not scan._FORK
    forked = _scan(big, lists)
    plain = _flatten(scan_paths(_tree(big), lists, tier_of))
    with monkeypatch.context() as m:
        m.setattr(scan, "_walk", None)  # the pure-Python walk, without the accelerator
        assert _scan(big, lists) == forked
    monkeypatch.setattr(scan, "_FORK", False)
    threaded = _scan(big, lists)
    monkeypatch.setattr(scan, "_FORK_MIN", 10**9)
    serial = _scan(big, lists)
    monkeypatch.setattr(scan, "_CHUNK_PATHS", 7)  # many chunk edges, folders split across
    small_chunks = _scan(big, lists)
    monkeypatch.setattr(scan, "_CHUNK_PATHS", 2)
    tiny_chunks = _scan(big, lists)
    assert forked == threaded == serial == small_chunks == tiny_chunks
    assert forked == plain
    observed, unlisted = forked
    top = dict(observed["top"])
    assert top["gone.txt"].seen is Seen.MISSING
    assert top["becomes_dir"].seen is Seen.DIRECTORY
    assert top["real"].seen is Seen.DIRECTORY
    assert top["linkdir/inside.txt"] == Observed(
        seen=Seen.OTHER, error="a parent folder is a symlink"
    )
    assert top["big.bin/x"].seen is Seen.MISSING
    assert top["p0/gone/x.py"].seen is Seen.MISSING
    assert top["linkdir"].seen is Seen.SYMLINK and top["linkdir"].target == "real"
    assert top["dangling"].target == "nowhere"
    assert top["crlf.txt"].sha256 == hashlib.sha256(b"a\r\nb\r\n").hexdigest()
    assert top["empty.py"].sha256 == hashlib.sha256(b"").hexdigest()
    assert top["run.sh"].mode == MODE_EXEC
    for unsafe in ("../escape.py", "a//b.py", "sub/.git/x"):
        assert unsafe not in top  # never looked at
    for name in HOSTILE:
        path = os.fsencode(name).decode("utf-8", "surrogateescape")
        assert top[path].seen is Seen.FILE, name
    if hasattr(os, "mkfifo"):
        assert top["fifo"].seen is Seen.OTHER
    rest = dict(observed["rest"])
    assert rest["p1/m1/f1.py"].sha256 == hashlib.sha256(b"changed").hexdigest()
    assert rest["vendor/sub"].seen is Seen.GITLINK  # a submodule: the commit it is at
    assert rest["build/kept.txt"].seen is Seen.FILE
    # Unsigned candidates: untracked and not ignored, or tracked; never ignored ones.
    assert [p for p, _ in unlisted["top"]] == ["untracked.py"]
    assert [p for p, _ in unlisted["rest"]] == ["p2/fresh/deep.py", "p3/m3/f3.py"]


def test_signed_in_the_wrong_tier_is_a_candidate_of_its_own(big: Path) -> None:
    lists = _lists(big, [])
    _, unlisted = _scan(big, lists)
    # `run.sh` is on `top`'s list (where the policy puts it) and on `rest`'s: no finding
    # for `top`; taken off `top`'s list, it is an unsigned `top` file.
    assert "run.sh" not in dict(unlisted["top"])
    top = [e for e in lists["top"] if e.path != "run.sh"]
    lists["top"] = read_list(format_list(top), source="top")
    _, unlisted = _scan(big, lists)
    assert dict(unlisted["top"])["run.sh"].seen is Seen.FILE


@pytest.mark.skipif(scan._walk is None, reason="built without the accelerator")
@pytest.mark.parametrize("chunk_paths", [5, 300, 100_000])
def test_accelerator_walks_like_the_pure_walk(
    big: Path, monkeypatch: pytest.MonkeyPatch, chunk_paths: int
) -> None:
    """`_walk.c` and `_walk_pure` give the same records and leftovers for every chunk,
    with every action, including paths that lead nowhere or out of the tree."""
    assert scan._walk is not None
    monkeypatch.setattr(scan, "_CHUNK_PATHS", chunk_paths)
    tree = _tree(big)
    tree.prepare(whole=True)
    index = tree.index_paths()
    assert index is not None
    lists = _lists(big, EXTRA)
    sources = [scan._Source(tier=t, data=e.data) for t, e in lists.items()]
    sources.append(scan._Source(tier=None, data=index))
    rng = random.Random(5)
    for i, ranges in enumerate(scan._plan_chunks(sources)):
        keys = sorted(
            {
                k
                for s, (a, b) in zip(sources, ranges, strict=True)
                for k in scan._keys(s, s.data[a:b].split(s.sep)[:-1])
            }
        )
        keys += [b"zz/../up", b"/abs", b"a\0b", b"x" * 300, b"p0/" + b"y" * 256 + b"/f"]
        keys.sort()
        actions = bytes(rng.choice(b"\0\1\2\2\2") for _ in keys)
        previous = None if i == 0 else keys[0][:-1]
        fast = scan._walk(str(big), keys, actions, i == 0, previous)
        pure = scan._walk_pure(str(big), keys, actions, i == 0, previous)
        assert fast[0] == pure[0], i
        assert sorted(fast[1]) == sorted(pure[1]), i


@pytest.mark.skipif(scan._walk is None, reason="built without the accelerator")
def test_accelerator_rejects_bad_arguments(tmp_path: Path) -> None:
    assert scan._walk is not None
    with pytest.raises(ValueError):
        scan._walk(str(tmp_path), [b"a"], b"", True, None)
    with pytest.raises(TypeError):
        scan._walk(str(tmp_path), ["a"], b"\2", True, None)  # type: ignore[list-item]
    records, leftovers = scan._walk(str(tmp_path / "gone"), [b"a", b"b/c"], b"\2\2", True, None)
    assert records[0] == records[33] == 3 and leftovers == []  # no root: Python looks


def test_build_lists_equal_the_plain_ones(big: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matcher = parse_policy(POLICY).matcher()
    tree = _tree(big)
    paths = tree.candidates()
    seen = tree.observe(paths)
    want: dict[str, list[Entry]] = {"top": [], "rest": []}
    for p in paths:
        entry = seen[p].as_entry(p)
        tier = matcher.tier_of(p)
        if entry is not None and tier is not None:
            want[tier].append(entry)
    expected = {t: (format_list(e), len(e)) for t, e in want.items()}
    tree = _tree(big)
    tree.prepare(whole=True)
    assert tree.build(["top", "rest"], matcher.tier_of).lists == expected
    monkeypatch.setattr(scan, "_walk", None)
    assert _tree(big).build(["top", "rest"], matcher.tier_of).lists == expected
    monkeypatch.setattr(scan, "_FORK", False)
    monkeypatch.setattr(scan, "_FORK_MIN", 10**9)
    monkeypatch.setattr(scan, "_CHUNK_PATHS", 5)
    assert _tree(big).build(["top", "rest"], matcher.tier_of).lists == expected


def test_no_git_every_file_is_a_candidate(tmp_path: Path) -> None:
    for rel in ("a.py", "d/b.py", "d/e/c.txt", ".git/config"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    tree = WorkTree(tmp_path)
    tier_of = parse_policy(POLICY).matcher().tier_of
    listed = read_list(format_list([]), source="x")
    _, unlisted = _flatten(tree.scan({"top": listed, "rest": listed}, tier_of))
    assert [p for p, _ in unlisted["top"]] == ["a.py"]
    assert [p for p, _ in unlisted["rest"]] == ["d/b.py", "d/e/c.txt"]
    built = tree.build(["top", "rest"], tier_of).lists
    assert [e.path for e in parse_list(built["rest"][0], source="x")] == ["d/b.py", "d/e/c.txt"]


def test_no_fork_while_other_threads_run(big: Path) -> None:
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not scan._use_processes(10**6)
    finally:
        stop.set()
        other.join()


def test_read_file_of_a_file_that_grows_after_fstat() -> None:
    # /proc files say size 0 and hold more: the one-read path must notice and read on.
    fd = os.open("/proc/self", os.O_RDONLY) if os.path.isdir("/proc/self") else None
    if fd is None:
        pytest.skip("no /proc")
    try:
        buffer = bytearray(1 << 20)
        got = scan._read_file(fd, b"cmdline", memoryview(buffer), buffer)
    finally:
        os.close(fd)
    with open("/proc/self/cmdline", "rb") as f:
        assert got is not None and got[0] == hashlib.sha256(f.read()).digest()


@pytest.mark.parametrize("normalize_eol", [False, True])
def test_threaded_observe_agrees_with_observe_path(big: Path, normalize_eol: bool) -> None:
    paths = sorted(_tree(big).candidates() + EXTRA[:6])
    tree = WorkTree(big, normalize_eol=normalize_eol)
    threaded = tree.observe(paths)
    one_by_one = {
        p: observe_path(str(big), p, normalize_eol=normalize_eol, dir_ok=FolderCheck(str(big)))
        for p in paths
    }
    assert threaded == one_by_one
    assert threaded["crlf.txt"].sha256 == hash_bytes(b"a\r\nb\r\n", normalize_eol=normalize_eol)


@pytest.mark.parametrize("walk", ["fast", "pure"])
def test_line_ends_as_git_decides_them(
    big: Path, monkeypatch: pytest.MonkeyPatch, walk: str
) -> None:
    """A file holding a CRLF is hashed normalised when git says so, byte for byte when
    not; files without a CRLF never ask git (they hash the same either way)."""
    if walk == "pure":
        monkeypatch.setattr(scan, "_walk", None)
    lists = _lists(big, [])
    matcher = parse_policy(POLICY).matcher()
    asked: list[str] = []

    def eol(paths: Iterable[str]) -> frozenset[str]:
        asked.extend(paths)
        return frozenset(p for p in paths if p == "crlf.txt")

    repo = GitRepo(big)
    tree = WorkTree(big, start_index=repo.start_index_listing, ignored=repo.ignored, eol=eol)
    observed, _ = _flatten(tree.scan(lists, matcher.tier_of))
    top = dict(observed["top"])
    assert top["crlf.txt"].sha256 == hashlib.sha256(b"a\nb\n").hexdigest()
    assert top["empty.py"].sha256 == hashlib.sha256(b"").hexdigest()
    assert "crlf.txt" in asked and "crlf.bin" not in asked
    # Of the listed files, only those holding a CRLF are asked about (the few untracked
    # candidates are observed one by one, git asked about each).
    listed = [p for p in asked if p not in UNSIGNED]
    assert all(b"\r\n" in (big / p).read_bytes() for p in listed)
    built = tree.build(["top", "rest"], matcher.tier_of).lists
    line = next(e for e in parse_list(built["top"][0], source="t") if e.path == "crlf.txt")
    assert line.sha256 == hashlib.sha256(b"a\nb\n").hexdigest()
    tree = WorkTree(big, start_index=repo.start_index_listing, ignored=repo.ignored)
    observed, _ = _flatten(tree.scan(lists, matcher.tier_of))
    assert dict(observed["top"])["crlf.txt"].sha256 == hashlib.sha256(b"a\r\nb\r\n").hexdigest()


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


def test_index_listing_and_ignored(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*.log\nout/\n")
    for rel in ("a.py", "d/b.py", "new.py", "skip.log", "keep.log", "out/x"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    subprocess.run(["git", "-C", str(tmp_path), "add", "a.py", "d"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "-f", "keep.log"], check=True)
    repo = GitRepo(tmp_path)
    assert repo.start_index_listing()() == b"a.py\0d/b.py\0keep.log\0"
    assert repo.ignored(["new.py", "skip.log", "out/", "d/"]) == {"skip.log", "out/"}
    assert repo.ignored([]) == set()


# --- the list held as bytes ---------------------------------------------------------------


def test_read_list_equals_parse_list_and_finds_paths() -> None:
    digest = "ab" * 32
    paths = ["a b", 'q"uote', "tab\tx", "\u00e9t\u00e9", "line\u2028sep", "bad\udcff", "z/y", "z"]
    entries = [Entry(path=p, sha256=digest, mode=MODE_FILE, kind=Kind.FILE) for p in paths]
    entries.append(Entry(path="ln", sha256=digest, mode=MODE_LINK, kind=Kind.SYMLINK))
    data = format_list(entries)
    listed = read_list(data, source="t")
    parsed = parse_list(data, source="t")
    assert list(listed) == parsed and len(listed) == len(entries)
    assert sorted(parsed, key=lambda e: path_key(e.path)) == parsed
    for e in entries:
        assert listed.get(e.path) == e and e in listed
    assert listed.get("nope") is None and listed.get("") is None and listed.get("zz") is None
    assert [o for o, _ in listed.entries()] == [
        i for i in range(len(data)) if i == 0 or data[i - 1 : i] == b"\n"
    ][: len(entries)]


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"D 100644 file b\nD 100644 file a\n", 2),
        (b"D 100644 file a\nD 100644 symlink b\n", 2),
        (b'D 100644 file a\nD 100644 file "bad\n', 2),
        (b"D 100644 file a\nnope\n", 2),
        (b"D 100644 file a\nD 100644 file a\n", 2),
        (b"D 120000 symlinx a\n", 1),
        (b"D 100644 file\n", 1),
        (b"X" * 64 + b" 100644 file a\n", 1),
    ],
)
def test_read_list_errors_name_the_line(body: bytes, line: int) -> None:
    for read in (parse_list, read_list):
        with pytest.raises(EnvelopeError) as err:
            read(body.replace(b"D", b"cd" * 32), source="x.list")
        assert err.value.where == f"x.list:{line}"


def test_read_list_checks_order_across_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    from qeguard.integrity import manifest

    digest = "cd" * 32
    entries = [
        Entry(path=f"f{i:04d}", sha256=digest, mode=MODE_FILE, kind=Kind.FILE) for i in range(50)
    ]
    data = format_list(entries)
    monkeypatch.setattr(manifest, "_SEGMENT", 200)  # a few lines per segment
    assert len(read_list(data, source="x")) == 50
    lines = data.split(b"\n")
    lines[20], lines[21] = lines[21], lines[20]
    with pytest.raises(EnvelopeError) as err:
        read_list(b"\n".join(lines), source="x")
    assert err.value.where == "x:22"


def test_a_chunk_knows_the_folders_entered_before_it() -> None:
    # A path with a backslash is unsafe on a list, but a walk still enters its folder:
    # the chunk after it must not list that folder a second time.
    index = scan._Source(tier=None, data=b"a/x.py\0q/a\\b.py\0q/z.py\0")
    assert index.before(index.data.index(b"q/z.py")) == b"q/a\\b.py"
    assert index.before(index.data.index(b"q/a\\b.py")) == b"a/x.py"
    assert index.before(0) is None
    escaping = scan._Source(tier=None, data=b"a/x.py\0b/../c\0b/d\0")
    assert escaping.before(escaping.data.index(b"b/d")) == b"a/x.py"


@pytest.mark.parametrize("legacy", [False, True])
def test_objects_through_one_cat_file(tmp_path: Path, legacy: bool) -> None:
    """HEAD, ids and blobs come from one `cat-file --batch-command` (or, with a git
    older than 2.36, `--batch` and `--batch-check`), names with spaces included."""
    _git(tmp_path, "init", "-q", "-b", "main")
    repo = GitRepo(tmp_path)
    assert repo.head() is None  # no commit yet
    (tmp_path / "a b.txt").write_bytes(b"one\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", "c")
    repo = GitRepo(tmp_path)
    repo._objects._legacy = legacy
    head = repo.head()
    assert head is not None and len(head) == 40
    assert repo.read_at(head, "a b.txt") == b"one\n"
    assert repo.read_at(head, "d/x") == b""
    assert repo.read_at(head, "d") is None  # a tree, not a blob
    assert repo.read_at(head, "missing file") is None
    assert repo.read_at(head, "new\nline") is None
    blob = repo.blob_id_at(head, "a b.txt")
    assert blob is not None and repo.read_blob(blob) == b"one\n"
    assert repo.blob_id_at(head, "nope") is None
    assert repo.config("user", "name") is None or isinstance(repo.config("user", "name"), str)
    assert repo.filemode in (True, False)


def test_a_build_walks_past_what_git_would_list(big: Path) -> None:
    """After a build, the tree knows the candidates git lists (tracked, and untracked
    but not ignored) without asking git for a second walk; a repository of its own
    inside the tree is one folder to git, and none of its files to the walk."""
    tree = _tree(big)
    assert tree.walked() is None
    tree.prepare(whole=True)
    tree.build(["top", "rest"], parse_policy(POLICY).matcher().tier_of)
    walked = tree.walked()
    assert walked is not None
    git_lists = {p for p in GitRepo(big).list_paths() if not p.endswith("/")}
    assert sorted(walked, key=path_key) == sorted(git_lists, key=path_key)
