"""What a tree is to verification: the paths it holds and what each one is.

A `Tree` is anything verification can look at: the working tree (`trees.work`), the
staged index (`trees.index`) or a commit (`trees.commit`). Verification asks a tree to
scan the signed lists: for each list, in list order, the tree's own lines for the same
paths (`Block`s, compared as bytes in the common case of no change), then the paths the
policy gives a tier that its list lacks. It never touches the file system or git itself.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from qeguard.integrity.manifest import (
    MODE_GITLINK,
    MODE_LINK,
    Entry,
    EntryList,
    Kind,
    entry_of_line,
    format_list,
    path_key,
    unsafe_path_reason,
)


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


@dataclass(frozen=True, kw_only=True, slots=True)
class Block:
    """What a tree holds for the lines [start, end) of a tier's list (byte offsets of
    line starts): `lines` are the tree's own list lines, in list order, for the listed
    paths that are a file, a symlink or a gitlink now; `others` (sorted by path) what the other
    listed paths are; a listed path in neither was not looked at (an unsafe path).
    `targets` holds the symlinks' targets, for the messages."""

    start: int
    end: int
    lines: bytes
    others: tuple[tuple[str, Observed], ...] = ()
    targets: Mapping[str, str] = field(default_factory=dict)

    def observed(self) -> Iterator[tuple[str, Observed]]:
        """Every observation of the block, sorted by path."""
        from_lines = (self._from_line(line) for line in self.lines.split(b"\n")[:-1])
        return heapq.merge(from_lines, self.others, key=lambda item: path_key(item[0]))

    def _from_line(self, line: bytes) -> tuple[str, Observed]:
        e = entry_of_line(line)
        seen = _SEEN_OF[e.kind]
        target = self.targets.get(e.path)
        return e.path, Observed(seen=seen, sha256=e.sha256, mode=e.mode, target=target)


class Scan(Protocol):
    """A scan of a tree against the signed lists, read in two steps."""

    def blocks(self) -> Iterator[tuple[str, Block]]:
        """(tier, block) for every line of every list, each tier's blocks in list order."""
        ...

    def unlisted(self) -> dict[str, list[tuple[str, Observed]]]:
        """Once the blocks are read: by tier, the tree's candidates that the policy gives
        the tier and its list lacks, sorted by path, with what each is."""
        ...

    def candidates(self) -> Iterable[str]:
        """Once the unlisted are read: the tree's candidate paths (what could be
        protected), for the policy's checks (a pattern that matches nothing)."""
        ...


_SEEN_OF = {Kind.FILE: Seen.FILE, Kind.SYMLINK: Seen.SYMLINK, Kind.GITLINK: Seen.GITLINK}


class Tree(Protocol):
    """What verification may ask of a tree."""

    label: str  # "working tree", "staged index", "commit abc123"
    exec_bit_meaningful: bool

    def prepare(self, *, whole: bool) -> None:
        """Start, in the background, what a scan of the whole tree (`whole`) will need."""
        ...

    def candidates(self) -> list[str]:
        """Every path in the tree that could be protected (never git-ignored ones)."""
        ...

    def observe(self, paths: Sequence[str]) -> dict[str, Observed]: ...

    def scan(
        self,
        lists: Mapping[str, EntryList],
        tier_of: Callable[[str], str | None],
        *,
        only: frozenset[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Scan:
        """Scan the tree against `lists` (by tier) with the policy's `tier_of`; `only`
        restricts everything to those paths (the staged ones)."""
        ...

    def read(self, path: str) -> bytes | None:
        """A small file's bytes (policy, trust, manifests), None when absent."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Built:
    """The lists a tree holds now (what `qeguard sign` writes): bytes and line count by
    tier, and the paths of those tiers that no list may hold (`unsafe_path_reason`)."""

    lists: dict[str, tuple[bytes, int]]
    unsafe: list[str]


def build_paths(tree: Tree, tiers: Collection[str], tier_of: Callable[[str], str | None]) -> Built:
    """`Built` through `tree.candidates` and `tree.observe`, path by path (the working
    tree has its own walk: `WorkTree.build`)."""
    assigned = [(p, t) for p in tree.candidates() if (t := tier_of(p)) is not None and t in tiers]
    unsafe = [p for p, _ in assigned if unsafe_path_reason(p) is not None]
    observed = tree.observe(sorted((p for p, _ in assigned), key=path_key))
    entries: dict[str, list[Entry]] = {t: [] for t in tiers}
    for path, tier in assigned:
        entry = observed[path].as_entry(path)
        if entry is not None:
            entries[tier].append(entry)
    return Built(
        lists={t: (format_list(e), len(e)) for t, e in entries.items()},
        unsafe=sorted(unsafe, key=path_key),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class PathScan:
    """A scan made path by path (`scan_paths`): everything is at hand at once."""

    by_tier: Mapping[str, Block]
    unlisted_by_tier: dict[str, list[tuple[str, Observed]]]
    candidate_paths: list[str]

    def blocks(self) -> Iterator[tuple[str, Block]]:
        yield from self.by_tier.items()

    def unlisted(self) -> dict[str, list[tuple[str, Observed]]]:
        return self.unlisted_by_tier

    def candidates(self) -> list[str]:
        return self.candidate_paths


class ScannedByPath:
    """For trees whose objects are read when asked for (a commit, the index, a test's
    in-memory tree): nothing to start ahead, and the scan is `scan_paths`."""

    def prepare(self, *, whole: bool) -> None:
        pass

    def scan(
        self: Tree,
        lists: Mapping[str, EntryList],
        tier_of: Callable[[str], str | None],
        *,
        only: frozenset[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PathScan:
        return scan_paths(self, lists, tier_of, only=only)


def scan_paths(
    tree: Tree,
    lists: Mapping[str, EntryList],
    tier_of: Callable[[str], str | None],
    *,
    only: frozenset[str] | None = None,
) -> PathScan:
    """A scan through `tree.candidates` and `tree.observe`, for trees where both are
    cheap lookups (the index, a commit) or the scan is small: every listed path and
    every candidate the policy assigns is observed once, one block per list."""
    listed: dict[str, list[str]] = {}
    for name, entries in lists.items():
        listed[name] = [
            e.path
            for e in entries
            if unsafe_path_reason(e.path) is None and (only is None or e.path in only)
        ]
    unlisted_paths: dict[str, list[str]] = {name: [] for name in lists}
    in_list = {name: {e.path for e in entries} for name, entries in lists.items()}
    candidates = sorted(only) if only is not None else tree.candidates()
    for path in candidates:
        tier = tier_of(path)
        if tier is not None and tier in unlisted_paths and path not in in_list[tier]:
            unlisted_paths[tier].append(path)
    wanted = {p for paths in listed.values() for p in paths}
    wanted.update(p for paths in unlisted_paths.values() for p in paths)
    observed = tree.observe(sorted(wanted, key=path_key))
    blocks: dict[str, Block] = {}
    for name, paths in listed.items():
        lines: list[str] = []
        others: list[tuple[str, Observed]] = []
        targets: dict[str, str] = {}
        for path in paths:
            seen = observed[path]
            entry = seen.as_entry(path)
            if entry is None:
                others.append((path, seen))
                continue
            lines.append(entry.line() + "\n")
            if seen.target is not None:
                targets[path] = seen.target
        blocks[name] = Block(
            start=0,
            end=len(lists[name].data),
            lines="".join(lines).encode("utf-8", "surrogateescape"),
            others=tuple(others),
            targets=targets,
        )
    return PathScan(
        candidate_paths=candidates,
        by_tier=blocks,
        unlisted_by_tier={
            name: [(p, observed[p]) for p in sorted(paths, key=path_key)]
            for name, paths in unlisted_paths.items()
        },
    )


def hash_bytes(data: bytes, *, normalize_eol: bool) -> str:
    if normalize_eol and b"\r\n" in data and not looks_binary(data):
        data = data.replace(b"\r\n", b"\n")
    return hashlib.sha256(data).hexdigest()


def looks_binary(data: bytes) -> bool:
    # git's heuristic (convert.c): a NUL or a lone CR in the first 8000 bytes means binary.
    head = data[:8000]
    return b"\0" in head or head.replace(b"\r\n", b"").count(b"\r") > 0


# Shared answers for the outcomes that carry no per-file data (Observed is frozen).
