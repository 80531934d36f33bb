"""The working tree: the files on disk, as the manifest sees them.

`WorkTree` is the `Tree` of the files on disk; a scan of the whole tree (verify, sign)
is `trees.scan`'s one walk in worker processes. Here: looking at single paths
(`observe_path`, never following a symlink), hashing an open file in bounded memory
(`digest_fd`), and git's listing of the candidates for the watcher.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path

from qeguard.integrity.manifest import MODE_EXEC, MODE_FILE, MODE_LINK, EntryList
from qeguard.integrity.trees.base import (
    Built,
    Observed,
    Scan,
    Seen,
    gitlink,
    hash_bytes,
    looks_binary,
    scan_paths,
)

_CHUNK = 1 << 20  # read size, and the most one file adds to memory per worker
_BATCH = 64
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


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
        start_index: Callable[[], Callable[[], bytes]] | None = None,
        ignored: Callable[[Sequence[str]], Collection[str]] | None = None,
        normalize_eol: bool = False,
        eol: Callable[[Iterable[str]], AbstractSet[str]] | None = None,
        gitlinks: Callable[[Sequence[str]], Mapping[str, str]] | None = None,
        exec_bit_meaningful: bool = True,
        workers: int | None = None,
    ):
        """In a git work tree: `list_paths` lists the candidates (tracked, and untracked
        but not ignored), `start_index` starts listing the index (`git ls-files -z`) and
        returns a function that waits for its bytes, and `ignored` says which of some
        untracked paths git ignores. Without them every file is a candidate.

        `eol` says which of some paths git stores with CRLF turned into LF (see
        `GitRepo.eol_converted`); only those are hashed normalised. Without it,
        `normalize_eol` normalises every path or none. `gitlinks` gives the commit of
        each of some folders that is a submodule (`GitRepo.worktree_gitlinks`)."""
        self.root = root
        self._eol = eol
        self._gitlinks = gitlinks
        self._list_paths = list_paths
        self._start_index = start_index
        self._index: Callable[[], bytes] | None = None
        self._ignored = ignored
        self.normalize_eol = normalize_eol
        self.exec_bit_meaningful = exec_bit_meaningful and os.name == "posix"
        self.workers = workers or min(16, (os.cpu_count() or 2) * 4)
        self._dir_ok = FolderCheck(str(root))
        self._walked: Scan | None = None

    def normalized(self, paths: Sequence[str]) -> AbstractSet[str]:
        """Which of `paths` are hashed with CRLF as LF (empty: the fast path for all).
        Only a file holding a CRLF can hash differently: a whole-tree scan asks about
        those alone."""
        if self._eol is not None:
            return self._eol(paths)
        return frozenset(paths) if self.normalize_eol else frozenset()

    def submodules(self, folders: Sequence[str]) -> dict[str, Observed]:
        """The folders among `folders` that are submodules, as what they are: the commit
        each is at (git lists a submodule as one path; on disk it is a folder)."""
        if self._gitlinks is None or not folders:
            return {}
        return {path: gitlink(commit) for path, commit in self._gitlinks(folders).items()}

    def prepare(self, *, whole: bool) -> None:
        if whole and self._start_index is not None and self._index is None:
            self._index = self._start_index()

    def index_paths(self) -> bytes | None:
        """git's index as NUL-separated paths (sorted; a conflicted path repeats), or
        None outside a git work tree."""
        if self._start_index is None:
            return None
        collect, self._index = self._index or self._start_index(), None
        return collect()

    def ignored(self, paths: Sequence[str]) -> Collection[str]:
        """Which of some untracked `paths` git ignores (a folder ends with "/")."""
        return self._ignored(paths) if self._ignored is not None else ()

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
        if b"\r\n" in data and not looks_binary(data) and self.normalized((path,)):
            data = data.replace(b"\r\n", b"\n")
        return data

    def observe(
        self, paths: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> dict[str, Observed]:
        result = self._observe(paths, progress)
        # A submodule is a folder on disk (empty when not checked out): its state is the
        # commit it is at.
        result.update(self.submodules([p for p, o in result.items() if o.seen is Seen.DIRECTORY]))
        return result

    def _observe(
        self, paths: Sequence[str], progress: Callable[[int], None] | None
    ) -> dict[str, Observed]:
        root = str(self.root)
        result: dict[str, Observed] = {}
        norm = self.normalized(paths)

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
        from concurrent.futures import ThreadPoolExecutor

        # hashlib and os.read release the GIL, so threads hash in parallel.
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for part in pool.map(batch, chunks):
                result.update(part)
        return result

    def scan(
        self,
        lists: Mapping[str, EntryList],
        tier_of: Callable[[str], str | None],
        *,
        only: frozenset[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Scan:
        if only is not None:  # a few named paths: no walk
            return scan_paths(self, lists, tier_of, only=only)
        from qeguard.integrity.trees.scan import WorkScan, _Source

        sources = [_Source(tier=name, data=e.data) for name, e in lists.items() if len(e)]
        return WorkScan(self, sources, tier_of, set(lists), progress)

    def build(
        self,
        tiers: Collection[str],
        tier_of: Callable[[str], str | None],
        progress: Callable[[int], None] | None = None,
    ) -> Built:
        """The list the tree holds now for each of `tiers`: its bytes and line count (what
        `qeguard sign` writes), and the paths no list may hold. One walk: git's index
        names the tracked files, and the walk the untracked ones git does not ignore."""
        from qeguard.integrity.trees.scan import WorkScan

        scan = WorkScan(self, [], tier_of, set(tiers), progress, build=True)
        for _ in scan.blocks():
            pass  # building yields no blocks; the walk's lines are gathered as it goes
        built = scan.built()
        self._walked = scan
        return built

    def walked(self) -> Iterable[str] | None:
        """The candidates the last `build` walked past (what `candidates` would list, as
        git lists them), or None when there was none: no second walk needed."""
        return self._walked.candidates() if self._walked is not None else None


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
