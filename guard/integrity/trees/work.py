"""The working tree: walking and hashing the files on disk, as the manifest sees them.

Every speed trick of the integrity check lives here (forked hashing workers, folder
descriptors, one read per small file), behind the same `Tree` interface as the index and
commit trees.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from qeguard.integrity.manifest import (
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    cycle_collection_paused,
)
from qeguard.integrity.trees.base import Observed, Seen, gitlink, hash_bytes, looks_binary

_CHUNK = 1 << 20  # read size, and the most one file adds to memory per worker
_BATCH = 64
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)


_MISSING = Observed(seen=Seen.MISSING)
_DIRECTORY = Observed(seen=Seen.DIRECTORY)
_THROUGH_SYMLINK = Observed(seen=Seen.OTHER, error="a parent folder is a symlink")
_NOT_REGULAR = Observed(seen=Seen.OTHER, error="not a regular file")


def observe_path(
    root: str,
    rel: str,
    *,
    normalize_eol: bool,
    dir_ok: Callable[[str], bool],
    buffer: bytearray | None = None,
) -> Observed:
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


def _observe_other(
    full: str, rel: str, dir_ok: Callable[[str], bool], *, open_error: OSError | None
) -> Observed:
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
    data = os.read(fd, len(view))
    view[: len(data)] = data
    return len(data)


if hasattr(os, "readv"):  # not on Windows

    def _read_into(fd: int, view: memoryview) -> int:
        return os.readv(fd, [view])


def digest_fd(fd: int, size: int, *, normalize_eol: bool, buffer: bytearray) -> str:
    """SHA-256 of an open file from its current offset to its end, read through `buffer`
    (at least 8000 bytes) so that memory stays flat whatever the file size.

    `size` is a hint (the file may change while it is read): asking for one byte more
    than expected makes a short read prove the end of file, so most files take a
    single read. With `normalize_eol` the result equals `hash_bytes(whole_file,
    normalize_eol=True)`: binary or not is decided on the first 8000 bytes, and a CR
    at the end of a chunk waits for the next one so a CRLF is never split.
    """
    view = memoryview(buffer)
    want = min(size + 1, len(buffer))
    n = _read_into(fd, view[:want])
    whole = n < want  # a regular file reads short only at its end
    if n == want < len(buffer):
        # The file grew past the hint: fill the buffer, so that the first chunk holds
        # what a whole-file hash would look at for the binary check.
        while n < len(buffer) and (more := _read_into(fd, view[n:])):
            n += more
        whole = n < len(buffer)
    if whole:
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

    def __init__(
        self,
        root: Path,
        *,
        list_paths: Callable[[], list[str]] | None = None,
        start_listing: Callable[[], Callable[[], list[str]]] | None = None,
        normalize_eol: bool = False,
        eol: Callable[[Iterable[str]], AbstractSet[str]] | None = None,
        gitlinks: Callable[[Sequence[str]], Mapping[str, str]] | None = None,
        exec_bit_meaningful: bool = True,
        workers: int | None = None,
    ):
        """`eol` says which of some paths git stores with CRLF turned into LF (see
        `GitRepo.eol_converted`); only those are hashed normalised. Without it,
        `normalize_eol` normalises every path or none. `gitlinks` gives the commit of
        each of some folders that is a submodule (`GitRepo.worktree_gitlinks`)."""
        self.root = root
        self._eol = eol
        self._gitlinks = gitlinks
        self._list_paths = list_paths
        self._start_listing = start_listing
        self._listing: Callable[[], list[str]] | None = None
        self.normalize_eol = normalize_eol
        self.exec_bit_meaningful = exec_bit_meaningful and os.name == "posix"
        self.workers = workers or min(16, (os.cpu_count() or 2) * 4)
        self._dir_ok = FolderCheck(str(root))
        self._ahead: _Forked | None = None

    def list_ahead(self) -> None:
        """Start listing the candidates in the background; `candidates` collects them."""
        if self._start_listing is not None and self._listing is None:
            self._listing = self._start_listing()

    def candidates(self) -> list[str]:
        if self._listing is not None:
            listing, self._listing = self._listing, None
            return listing()
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
        if b"\r\n" in data and not looks_binary(data) and self._normalized((path,)):
            data = data.replace(b"\r\n", b"\n")
        return data

    def _normalized(self, paths: Sequence[str]) -> AbstractSet[str]:
        """Which of `paths` are hashed with CRLF as LF (empty: the fast path for all)."""
        if self._eol is not None:
            return self._eol(paths)
        return frozenset(paths) if self.normalize_eol else frozenset()

    def observe_ahead(
        self, paths: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> None:
        """Start observing `paths` in worker processes and return at once, so the caller
        can work meanwhile; `observe` takes what it asks for from them. Small sets, or
        platforms without fork, are left to `observe`."""
        if self._ahead is None and _use_processes(len(paths)):
            self._ahead = _Forked(str(self.root), paths, self._normalized(paths), progress)

    def observe(
        self, paths: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> dict[str, Observed]:
        result = self._observe(paths, progress)
        if self._gitlinks is not None:
            # git lists a submodule as one path; on disk it is a folder (empty when not
            # checked out). Its state is the commit it is at.
            folders = [p for p, o in result.items() if o.seen is Seen.DIRECTORY]
            if folders:
                for path, commit in self._gitlinks(folders).items():
                    result[path] = gitlink(commit)
        return result

    def _observe(
        self, paths: Sequence[str], progress: Callable[[int], None] | None
    ) -> dict[str, Observed]:
        root = str(self.root)
        result: dict[str, Observed] = {}
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            done = ahead.result()
            if paths is ahead.paths or paths == ahead.paths:
                return done
            result = {p: o for p in paths if (o := done.get(p)) is not None}
            paths = [p for p in paths if p not in done]
        norm = self._normalized(paths)
        if _use_processes(len(paths)):
            result.update(_Forked(root, paths, norm, progress).result())
            return result

        def batch(chunk: Sequence[str]) -> list[tuple[str, Observed]]:
            buffer = bytearray(_CHUNK)
            out = [
                (
                    p,
                    observe_path(
                        root, p, normalize_eol=p in norm, dir_ok=self._dir_ok, buffer=buffer
                    ),
                )
                for p in chunk
            ]
            if progress:
                progress(len(chunk))
            return out

        chunks = [paths[i : i + _BATCH] for i in range(0, len(paths), _BATCH)]
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
_FORK = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
_FORK_MIN = 4096  # below this, starting processes costs more than it saves
_FORK_CHUNK = 2048
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_SEEN = {s.value: s for s in Seen}
# Observed as a plain tuple (seen, sha256, mode, target, error): pickles several times faster.
_Row = tuple[str, str | None, str | None, str | None, str | None]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _use_processes(count: int) -> bool:
    # Forking while other threads run (the watcher's) could copy a lock one of them
    # holds into the child; then threads it is.
    return (
        count >= _FORK_MIN and _FORK is not None and _cpus() > 1 and threading.active_count() == 1
    )


class _Forked:
    """Paths being observed by worker processes, started when this is made."""

    def __init__(
        self,
        root: str,
        paths: Sequence[str],
        normalize: AbstractSet[str],
        progress: Callable[[int], None] | None,
    ):
        assert _FORK is not None
        self.paths = paths
        self._chunks = [paths[i : i + _FORK_CHUNK] for i in range(0, len(paths), _FORK_CHUNK)]
        self._progress = progress
        self._pool = ProcessPoolExecutor(max_workers=_cpus(), mp_context=_FORK)
        # The first submit forks every worker, here in the calling thread and before the
        # pool starts its own thread: forking a process that runs threads can deadlock.
        self._futures = [
            self._pool.submit(
                _observe_rows, root, chunk, frozenset(p for p in chunk if p in normalize)
            )
            for chunk in self._chunks
        ]

    def result(self) -> dict[str, Observed]:
        out: dict[str, Observed] = {}
        try:
            with cycle_collection_paused():
                self._collect(out)
        finally:
            self._pool.shutdown(cancel_futures=True)
        return out

    def _collect(self, out: dict[str, Observed]) -> None:
        for chunk, future in zip(self._chunks, self._futures, strict=True):
            for path, (seen, sha256, mode, target, error) in zip(
                chunk, future.result(), strict=True
            ):
                out[path] = Observed(
                    seen=_SEEN[seen], sha256=sha256, mode=mode, target=target, error=error
                )
            if self._progress:
                self._progress(len(chunk))


def _observe_rows(root: str, paths: Sequence[str], normalize: AbstractSet[str]) -> list[_Row]:
    """What `observe_path` says about each of `paths` (sorted), in a worker process.

    The usual case, a regular file in real folders, is opened relative to its folder's
    descriptor: one path component to look up instead of the whole path, and the
    folders opened with O_NOFOLLOW prove that none of them is a symlink. Anything else
    goes through `observe_path`.
    """
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    dir_ok = FolderCheck(root)
    folders = _Folders.at(root) if os.open in os.supports_dir_fd else None
    rows: list[_Row] = []
    gc.disable()  # a short-lived worker process: only acyclic rows are made here
    last_parent, folder = None, None
    try:
        for rel in paths:
            row = None
            normalize_eol = rel in normalize
            if folders is not None:
                parent, _, name = rel.rpartition("/")
                if parent != last_parent:  # sorted: a folder's files come together
                    last_parent, folder = parent, folders.fd(parent)
                if folder is not None:
                    row = _file_row(folder, name, normalize_eol, buffer, view)
            if row is None:
                o = observe_path(
                    root, rel, normalize_eol=normalize_eol, dir_ok=dir_ok, buffer=buffer
                )
                row = (o.seen.value, o.sha256, o.mode, o.target, o.error)
            rows.append(row)
    finally:
        if folders is not None:
            folders.close()
    return rows


def _file_row(
    folder: int, name: str, normalize_eol: bool, buffer: bytearray, view: memoryview
) -> _Row | None:
    """A regular file's row, or None for anything else (or any error). `view` is
    `memoryview(buffer)`."""
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=folder)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        size = st.st_size
        digest = None
        if size < len(view) and not normalize_eol:  # most files: one read, one hash
            n = _read_into(fd, view[: size + 1])
            if n <= size:
                digest = hashlib.sha256(view[:n]).hexdigest()
            else:  # it grew since fstat
                os.lseek(fd, 0, os.SEEK_SET)
        if digest is None:
            digest = digest_fd(fd, size, normalize_eol=normalize_eol, buffer=buffer)
    except OSError:
        return None
    finally:
        os.close(fd)
    return ("file", digest, MODE_EXEC if st.st_mode & stat.S_IXUSR else MODE_FILE, None, None)


class _Folders:
    """Open descriptors of the folders down to the current one, each opened relative to
    its parent with O_NOFOLLOW, so a symlinked folder fails to open. Sorted paths keep
    a folder's files together: a folder is closed once the walk leaves it."""

    def __init__(self, root_fd: int):
        self._open: list[tuple[str, int]] = [("", root_fd)]

    @classmethod
    def at(cls, root: str) -> _Folders | None:
        try:
            return cls(os.open(root, os.O_RDONLY))
        except OSError:
            return None

    def fd(self, rel_dir: str) -> int | None:
        """The folder's descriptor, or None when it is missing, a symlink or unreadable."""
        stack = self._open
        while (
            len(stack) > 1
            and rel_dir != stack[-1][0]
            and not rel_dir.startswith(stack[-1][0] + "/")
        ):
            os.close(stack.pop()[1])
        top = stack[-1][0]
        if rel_dir == top:
            return stack[-1][1]
        for name in (rel_dir[len(top) + 1 :] if top else rel_dir).split("/"):
            if name in ("", ".", ".."):
                return None
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=stack[-1][1])
            except OSError:
                return None
            stack.append((f"{stack[-1][0]}/{name}" if stack[-1][0] else name, fd))
        return stack[-1][1]

    def close(self) -> None:
        for _, fd in self._open:
            os.close(fd)
        self._open = []


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
