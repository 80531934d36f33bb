"""Walking and hashing the files of a tree: what is actually there, as the manifest sees it.

A `Tree` is anything verification can look at: the working tree (here), the staged index
or a commit (in `guard.gitio`). Verification asks a tree for its candidate paths and to
observe a set of paths; it never touches the file system itself.
"""

from __future__ import annotations

import enum
import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from guard.manifest import MODE_EXEC, MODE_FILE, MODE_LINK, Entry, Kind

_SMALL = 1 << 20
_BATCH = 64


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


def observe_path(root: str, rel: str, *, normalize_eol: bool,
                 dir_ok: Callable[[str], bool]) -> Observed:
    full = os.path.join(root, rel)
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return Observed(seen=Seen.MISSING)
    except OSError as exc:
        return Observed(seen=Seen.UNREADABLE, error=exc.strerror or str(exc))
    parent = rel.rpartition("/")[0]
    if parent and not dir_ok(parent):
        return Observed(seen=Seen.OTHER, error="a parent folder is a symlink")
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(full)
        except OSError as exc:
            return Observed(seen=Seen.UNREADABLE, error=exc.strerror or str(exc))
        digest = hashlib.sha256(os.fsencode(target)).hexdigest()
        return Observed(seen=Seen.SYMLINK, sha256=digest, mode=MODE_LINK, target=target)
    if stat.S_ISDIR(mode):
        return Observed(seen=Seen.DIRECTORY)
    if not stat.S_ISREG(mode):
        return Observed(seen=Seen.OTHER, error="not a regular file")
    fmode = MODE_EXEC if mode & stat.S_IXUSR else MODE_FILE
    try:
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        return Observed(seen=Seen.UNREADABLE, mode=fmode, error=exc.strerror or str(exc))
    try:
        if st.st_size <= _SMALL or normalize_eol:
            chunks = []
            while True:
                chunk = os.read(fd, max(st.st_size + 1, 65536))
                if not chunk:
                    break
                chunks.append(chunk)
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            digest = hash_bytes(data, normalize_eol=normalize_eol)
        else:
            with os.fdopen(fd, "rb", closefd=False) as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        return Observed(seen=Seen.UNREADABLE, mode=fmode, error=exc.strerror or str(exc))
    finally:
        os.close(fd)
    return Observed(seen=Seen.FILE, sha256=digest, mode=fmode)


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
        self._dirs: dict[str, bool] = {}
        self._root_real = os.path.realpath(root)

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

    def _dir_ok(self, rel_dir: str) -> bool:
        ok = self._dirs.get(rel_dir)
        if ok is None:
            real = os.path.realpath(os.path.join(self.root, rel_dir))
            ok = real == os.path.join(self._root_real, *rel_dir.split("/"))
            self._dirs[rel_dir] = ok
        return ok

    def observe(self, paths: Sequence[str],
                progress: Callable[[int], None] | None = None) -> dict[str, Observed]:
        root = str(self.root)
        norm = self.normalize_eol

        def batch(chunk: Sequence[str]) -> list[tuple[str, Observed]]:
            out = [(p, observe_path(root, p, normalize_eol=norm, dir_ok=self._dir_ok))
                   for p in chunk]
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
