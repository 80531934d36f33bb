"""What a tree is to verification: the paths it holds and what each one is.

A `Tree` is anything verification can look at: the working tree (`trees.work`), the
staged index (`trees.index`) or a commit (`trees.commit`). Verification asks a tree for
its candidate paths and to observe a set of paths; it never touches the file system or
git itself.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from qeguard.integrity.manifest import MODE_GITLINK, MODE_LINK, Entry, Kind


class Seen(enum.Enum):
    FILE = "file"
    SYMLINK = "symlink"
    GITLINK = "gitlink"  # a submodule; `sha256` holds the commit it is at
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
        if self.seen is Seen.GITLINK and self.sha256:
            return Entry(path=path, sha256=self.sha256, mode=MODE_GITLINK, kind=Kind.GITLINK)
        return None


def gitlink(commit: str) -> Observed:
    """A submodule path, at `commit`."""
    return Observed(seen=Seen.GITLINK, sha256=commit, mode=MODE_GITLINK)


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
