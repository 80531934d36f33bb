"""Walking and hashing the files of a tree: what is actually there, as the manifest sees it.

A `Tree` is anything verification can look at: the working tree (here), the staged index
or a commit (in `guard.gitio`). Verification asks a tree for its candidate paths and to
observe a set of paths; it never touches the file system itself.
"""

from __future__ import annotations

import enum
import hashlib
import multiprocessing
import os
import stat
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from guard.manifest import MODE_EXEC, MODE_FILE, MODE_LINK, Entry, Kind

_CHUNK = 1 << 20  # read size, and the most one file adds to memory per worker
_BATCH = 64
_HAS_READV = hasattr(os, "readv")  # not on Windows
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))


class Seen(enum.Enum):
    FILE = "file"
    SYMLINK = "symlink"
    DIRECTORY = "directory"
    MISSING = "missing"
    OTHER = "other"  # fifo, socket, device, or a path through a symlinked folder
    UNREADABLE = "unreadable"


@dataclass(frozen=True, kw_only=True, slots=True)
class Observed:
    """One path as found in a tree."""

    seen: Seen
    sha256: str | None = None
    mode: str | None = None
    target: str | None = None  # symlink target
    error: str | None = None

    def as_entry(self, path: str) -> Entry | None:
        if self.seen is Seen.FILE and self.sha256 and self.mode:
            return Entry(path=path, sha256=self.sha256, mode=self.mode, kind=Kind.FILE)
        if self.seen is Seen.SYMLINK and self.sha256:
            return Entry(path=path, sha256=self.sha256, mode=MODE_LINK, kind=Kind.SYMLINK)
        return None


class Tree(Protocol):
    """What verification may ask of a tree."""

    label: str  # "working tree", "staged index", "commit abc123"
    exec_bit_meaningful: bool

    def candidates(self) -> list[str]:
        """Every path in the tree that could be protected (never git-ignored ones)."""
        ...

    def observe(self, paths: Sequence[str]) -> dict[str, Observed]: ...

    def read(self, path: str) -> bytes | None:
        """A small file's bytes (policy, trust, manifests), None when absent."""
        ...


def hash_bytes(data: bytes, *, normalize_eol: bool) -> str:
    if normalize_eol and b"\r\n" in data and not looks_binary(data):
        data = data.replace(b"\r\n", b"\n")
    return hashlib.sha256(data).hexdigest()


def looks_binary(data: bytes) -> bool:
    # git's heuristic (convert.c): a NUL or a lone CR in the first 8000 bytes means binary.
    head = data[:8000]
    return b"\0" in head or head.replace(b"\r\n", b"").count(b"\r") > 0


# Shared answers for the outcomes that carry no per-file data (Observed is frozen).
_MISSING = Observed(seen=Seen.MISSING)
_DIRECTORY = Observed(seen=Seen.DIRECTORY)
_THROUGH_SYMLINK = Observed(seen=Seen.OTHER, error="a parent folder is a symlink")
_NOT_REGULAR = Observed(seen=Seen.OTHER, error="not a regular file")


def observe_path(root: str, rel: str, *, normalize_eol: bool,
                 dir_ok: Callable[[str], bool], buffer: bytearray | None = None) -> Observed:
    """What `rel` is under `root`, never following a symlink.

    `buffer` (reused across calls by scans) saves an allocation per file.
    """
    full = os.path.join(root, rel)
    # The common case first, a readable regular file: open it and fstat the descriptor,
    # one path lookup instead of two (lookups dominate on trees of small files).
    # O_NOFOLLOW makes a symlink fail to open and O_NONBLOCK keeps a FIFO from blocking;
    # whatever is not a regular file we could open is classified by `_observe_other`.
    try:
        fd = os.open(full, _OPEN_FLAGS)
    except OSError as exc:
        return _observe_other(full, rel, dir_ok, open_error=exc)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return _observe_other(full, rel, dir_ok, open_error=None)
        parent = rel.rpartition("/")[0]
        if parent and not dir_ok(parent):
            return _THROUGH_SYMLINK
        fmode = MODE_EXEC if st.st_mode & stat.S_IXUSR else MODE_FILE
        if buffer is None:
            buffer = bytearray(min(max(st.st_size + 1, 1 << 16), _CHUNK))
        try:
            digest = digest_fd(fd, st.st_size, normalize_eol=normalize_eol, buffer=buffer)
        except OSError as exc:
            return Observed(seen=Seen.UNREADABLE, mode=fmode, error=exc.strerror or str(exc))
        return Observed(seen=Seen.FILE, sha256=digest, mode=fmode)
    finally:
        os.close(fd)


def _observe_other(full: str, rel: str, dir_ok: Callable[[str], bool], *,
                   open_error: OSError | None) -> Observed:
    """Missing, symlink, folder, special file, or a regular file that cannot be opened."""
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return _MISSING
    except OSError as exc:
        return Observed(seen=Seen.UNREADABLE, error=exc.strerror or str(exc))
    parent = rel.rpartition("/")[0]
    if parent and not dir_ok(parent):
        return _THROUGH_SYMLINK
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(full)
        except OSError as exc:
            return Observed(seen=Seen.UNREADABLE, error=exc.strerror or str(exc))
        digest = hashlib.sha256(os.fsencode(target)).hexdigest()
        return Observed(seen=Seen.SYMLINK, sha256=digest, mode=MODE_LINK, target=target)
    if stat.S_ISDIR(mode):
        return _DIRECTORY
    if not stat.S_ISREG(mode):
        return _NOT_REGULAR
    # A regular file that did not open (permissions), or one swapped in since the open.
    fmode = MODE_EXEC if mode & stat.S_IXUSR else MODE_FILE
    error = (open_error.strerror or str(open_error)) if open_error else "changed while read"
    return Observed(seen=Seen.UNREADABLE, mode=fmode, error=error)


def _read_into(fd: int, view: memoryview) -> int:
    if _HAS_READV:
        return os.readv(fd, [view])
    data = os.read(fd, len(view))
    view[: len(data)] = data
    return len(data)


def digest_fd(fd: int, size: int, *, normalize_eol: bool, buffer: bytearray) -> str:
    """SHA-256 of an open file from its current offset to its end, read through `buffer`
    so that memory stays flat whatever the file size.

    `size` is a hint (the file may change while it is read): asking for one byte more
    than expected makes a short read prove the end of file, so most files take a
    single read. With `normalize_eol` the result equals `hash_bytes(whole_file,
    normalize_eol=True)`: binary or not is decided on the first 8000 bytes, and a CR
    at the end of a chunk waits for the next one so a CRLF is never split.
    """
    view = memoryview(buffer)
    want = min(size + 1, len(buffer))
    n = _read_into(fd, view[:want])
    if n < want:  # a regular file reads short only at its end
        if normalize_eol:
            return hash_bytes(bytes(view[:n]), normalize_eol=True)
        return hashlib.sha256(view[:n]).hexdigest()
    h = hashlib.sha256()
    convert = normalize_eol and not looks_binary(bytes(view[:8000]))
    held = b""
    while n:
        if convert:
            chunk = held + bytes(view[:n])
            held = b"\r" if chunk.endswith(b"\r") else b""
            h.update(chunk[: len(chunk) - len(held)].replace(b"\r\n", b"\n"))
        else:
            h.update(view[:n])
        n = _read_into(fd, view)
    h.update(held)
    return h.hexdigest()


class WorkTree:
    """The files on disk under `root`."""

    label = "working tree"

    def __init__(self, root: Path, *, list_paths: Callable[[], list[str]] | None = None,
                 normalize_eol: bool = False, exec_bit_meaningful: bool = True,
                 workers: int | None = None):
        self.root = root
        self._list_paths = list_paths
        self.normalize_eol = normalize_eol
        self.exec_bit_meaningful = exec_bit_meaningful and os.name == "posix"
        self.workers = workers or min(16, (os.cpu_count() or 2) * 4)
        self._dir_ok = FolderCheck(str(root))

    def candidates(self) -> list[str]:
        if self._list_paths is not None:
            return self._list_paths()
        return walk_files(self.root)

    def read(self, path: str) -> bytes | None:
        full = self.root / path
        if full.is_symlink() or not full.is_file():
            return None
        data = full.read_bytes()
        # Policy, trust and manifests as git stores them: a CRLF checkout (autocrlf) of
        # a clean tree must not look like a changed policy or a malformed list.
        if self.normalize_eol and b"\r\n" in data and not looks_binary(data):
            data = data.replace(b"\r\n", b"\n")
        return data

    def observe(self, paths: Sequence[str],
                progress: Callable[[int], None] | None = None) -> dict[str, Observed]:
        root = str(self.root)
        if len(paths) >= _FORK_MIN and _FORK is not None and _cpus() > 1:
            return _observe_forked(root, paths, self.normalize_eol, progress)
        norm = self.normalize_eol

        def batch(chunk: Sequence[str]) -> list[tuple[str, Observed]]:
            buffer = bytearray(_CHUNK)
            out = [(p, observe_path(root, p, normalize_eol=norm, dir_ok=self._dir_ok,
                                    buffer=buffer)) for p in chunk]
            if progress:
                progress(len(chunk))
            return out

        chunks = [paths[i : i + _BATCH] for i in range(0, len(paths), _BATCH)]
        result: dict[str, Observed] = {}
        if len(chunks) <= 1:
            for chunk in chunks:
                result.update(batch(chunk))
            return result
        # hashlib and os.read release the GIL, so threads hash in parallel.
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for part in pool.map(batch, chunks):
                result.update(part)
        return result


class FolderCheck:
    """Answers "is any folder from the root down to this one a symlink?", with a cache."""

    def __init__(self, root: str):
        self.root = root
        self._root_real = os.path.realpath(root)
        self._ok: dict[str, bool] = {}

    def __call__(self, rel_dir: str) -> bool:
        """True when no folder from the root down to `rel_dir` is a symlink."""
        ok = self._ok.get(rel_dir)
        if ok is None:
            parent = rel_dir.rpartition("/")[0]
            if parent and not self(parent):
                ok = False
            elif os.name == "posix":
                # One lstat per folder, parents cached: realpath() would walk every
                # component again for each of the many small folders of a large tree.
                try:
                    ok = not stat.S_ISLNK(os.lstat(os.path.join(self.root, rel_dir)).st_mode)
                except OSError:
                    ok = True  # gone or unsearchable: the files below fail on their own
            else:  # realpath() also sees through Windows junctions, which lstat does not
                real = os.path.realpath(os.path.join(self.root, rel_dir))
                ok = real == os.path.join(self._root_real, *rel_dir.split("/"))
            self._ok[rel_dir] = ok
        return ok


# Large scans hash in forked processes: per-file work in Python (open, read, hash,
# result objects) holds the GIL for small files, so threads cannot use a second core.
# Only where fork is the platform's own way (Linux); elsewhere threads.
_FORK = (multiprocessing.get_context("fork")
         if sys.platform.startswith("linux") else None)
_FORK_MIN = 4096  # below this, starting processes costs more than it saves
_FORK_CHUNK = 2048
_SEEN = {s.value: s for s in Seen}
_Row = tuple[str, str | None, str | None, str | None, str | None]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _observe_rows(root: str, paths: Sequence[str], normalize_eol: bool) -> list[_Row]:
    """observe_path over `paths` in a worker process; plain tuples pickle much faster."""
    buffer = bytearray(_CHUNK)
    dir_ok = FolderCheck(root)  # paths are sorted, so one chunk shares most folders
    rows: list[_Row] = []
    for p in paths:
        o = observe_path(root, p, normalize_eol=normalize_eol, dir_ok=dir_ok, buffer=buffer)
        rows.append((o.seen.value, o.sha256, o.mode, o.target, o.error))
    return rows


def _observe_forked(root: str, paths: Sequence[str], normalize_eol: bool,
                    progress: Callable[[int], None] | None) -> dict[str, Observed]:
    assert _FORK is not None
    chunks = [paths[i : i + _FORK_CHUNK] for i in range(0, len(paths), _FORK_CHUNK)]
    result: dict[str, Observed] = {}
    with ProcessPoolExecutor(max_workers=_cpus(), mp_context=_FORK) as pool:
        parts = pool.map(_observe_rows, [root] * len(chunks), chunks,
                         [normalize_eol] * len(chunks))
        for chunk, rows in zip(chunks, parts, strict=True):
            for path, (seen, sha256, mode, target, error) in zip(chunk, rows, strict=True):
                result[path] = Observed(seen=_SEEN[seen], sha256=sha256, mode=mode,
                                        target=target, error=error)
            if progress:
                progress(len(chunk))
    return result


def walk_files(root: Path) -> list[str]:
    """Every non-directory below `root` except `.git`, as POSIX relative paths."""
    out: list[str] = []
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        if ".git" in dirs:
            dirs.remove(".git")
        for name in files:
            out.append(rel + name)
        for name in list(dirs):
            if os.path.islink(os.path.join(folder, name)):
                out.append(rel + name)
                dirs.remove(name)
    return out
