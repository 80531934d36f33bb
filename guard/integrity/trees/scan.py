"""The scan of a whole working tree: one walk that both hashes and lists, in workers.

Worker processes (forked, so they share the signed lists and git's index without
copying them) each take a run of paths in sorted order (a chunk, cut at the same path in
every source: the lists, and git's index), open every file relative to its folder's
descriptor, hash it with one read when it is small, and list each folder they are the
first to enter, so the files that no list and no index entry name are noticed in the
same walk. A worker sends back, per list, the lines the tree would sign for the same
paths: the verifier compares them with the signed bytes, so an unchanged block costs one
comparison and no object per entry. Only the few files absent from both the lists and
the index are put to git's ignore rules, by the parent.

The walk itself (`_walk_pure`) has an optional C twin, `_walk.c`, built by
`pip install .` where it can be; the two give the same records, and the tests hold them
to it. Everything else is the same code whichever walks.
"""

from __future__ import annotations

import binascii
import gc
import hashlib
import os
import stat
import sys
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qeguard.integrity.manifest import (
    MODE_EXEC,
    MODE_FILE,
    line_key,
    path_key,
    path_start,
    quote_path,
    unquote_path,
    unsafe_path_reason,
)
from qeguard.integrity.trees.base import Block, Built, Observed, Seen
from qeguard.integrity.trees.work import (
    _CHUNK,
    _DIR_FLAGS,
    _OPEN_FLAGS,
    FolderCheck,
    _read_into,
    observe_path,
    walk_files,
)

try:  # the optional accelerator (`_walk.c`); `_walk_pure` does the same without it
    from qeguard.integrity.trees import _walk as _walk_module

    _walk: Callable[..., tuple[bytes, list[tuple[bool, bytes, bytes, bytes]]]] | None = (
        _walk_module.walk
    )
except ImportError:
    _walk = None


def _plain_observation(seen: Observed) -> bool:
    return seen.seen is Seen.FILE or seen.seen is Seen.SYMLINK


@dataclass(frozen=True, kw_only=True, slots=True)
class _Source:
    """A sorted run of paths a scan walks: a tier's list (one line per entry) or, with
    `tier` None, git's index (NUL-separated paths)."""

    tier: str | None
    data: bytes

    @property
    def sep(self) -> bytes:
        return b"\0" if self.tier is None else b"\n"

    def key_at(self, offset: int) -> bytes:
        end = self.data.index(self.sep, offset)
        item = self.data[offset:end]
        return item if self.tier is None else line_key(item)

    def find(self, key: bytes, lo: int = 0) -> int:
        """The offset of the first item at or after `lo` (an item start) whose key is
        >= `key`, or the end of the data."""
        data, sep = self.data, self.sep
        hi = len(data)
        while lo < hi:
            begin = data.rfind(sep, lo, (lo + hi) // 2) + 1 or lo
            end = data.index(sep, begin)
            item = data[begin:end]
            if (item if self.tier is None else line_key(item)) < key:
                lo = end + 1
            else:
                hi = begin
        return lo

    def before(self, offset: int) -> bytes | None:
        """The key of the last path before `offset` (an item start) that a walk enters
        (`_walkable`), if any: the folders it lies in are listed already."""
        data, sep = self.data, self.sep
        while offset > 0:
            begin = data.rfind(sep, 0, offset - 1) + 1
            key = self.key_at(begin)
            if _walkable(key.decode("utf-8", "surrogateescape")):
                return key
            offset = begin
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Plan:
    """Everything a worker needs; forked workers inherit it instead of receiving it."""

    root: str
    sources: tuple[_Source, ...]
    chunks: tuple[tuple[tuple[int, int], ...], ...]  # per chunk, per source: byte range
    tier_of: Callable[[str], str | None]
    tiers: frozenset[str]  # the tiers scanned: other assignments do not matter
    has_index: bool  # the last source is git's index; else every file is a candidate
    build: bool  # `sign`: lines per tier of every candidate, not blocks per list


@dataclass(frozen=True, kw_only=True, slots=True)
class _Chunk:
    """What a worker found in one run of paths."""

    blocks: tuple[Block | None, ...] = ()  # per list source
    # Per list source: the paths among a block's `others` hashed byte for byte that hold
    # a CRLF (git may store them normalised: the parent asks).
    crlf: tuple[frozenset[str], ...] = ()
    built: Mapping[str, bytes] = field(default_factory=dict)  # build: lines by tier
    # build: (tier, path, seen) the parent settles (a CRLF file, a folder: a submodule?)
    unsettled: tuple[tuple[str, str, Observed], ...] = ()
    refused: tuple[str, ...] = ()  # build: paths of a tier that no list may hold
    unlisted: tuple[tuple[str, str, Observed], ...] = ()  # (tier, path, seen): candidates
    untracked: tuple[tuple[str | None, str], ...] = ()  # (tier, path): unless ignored
    folders: tuple[str, ...] = ()  # untracked folders no source reaches: walked later
    listed: int = 0  # list lines covered, for progress


class ScanTree(Protocol):
    """What a scan needs of a working tree (`WorkTree`)."""

    root: Path
    workers: int

    def index_paths(self) -> bytes | None: ...

    def normalized(self, paths: Sequence[str]) -> AbstractSet[str]: ...

    def submodules(self, folders: Sequence[str]) -> dict[str, Observed]: ...

    def ignored(self, paths: Sequence[str]) -> Collection[str]: ...

    def observe(self, paths: Sequence[str]) -> dict[str, Observed]: ...


class WorkScan:
    """A scan of the working tree in worker processes (see the module docstring), read
    as it goes: blocks first, then the unsigned candidates."""

    def __init__(
        self,
        tree: ScanTree,
        lists: Sequence[_Source],
        tier_of: Callable[[str], str | None],
        tiers: Collection[str],
        progress: Callable[[int], None] | None,
        *,
        build: bool = False,
    ):
        self._tree = tree
        self._tier_of = tier_of
        self._progress = progress
        index = tree.index_paths()
        sources = list(lists)
        if index is not None:  # last: what is tracked, and where to walk
            sources.append(_Source(tier=None, data=index))
        self._plan = _Plan(
            root=str(tree.root),
            sources=tuple(sources),
            chunks=_plan_chunks(sources),
            tier_of=tier_of,
            tiers=frozenset(tiers),
            has_index=index is not None,
            build=build,
        )
        self._unlisted: list[tuple[str, str, Observed]] = []
        self._untracked: list[tuple[str | None, str]] = []
        self._folders: list[str] = []
        self._built: dict[str, list[bytes]] = {t: [] for t in tiers}
        self._unsettled: list[tuple[str, str, Observed]] = []
        self._refused: list[str] = []
        self._found: list[tuple[str | None, str, Observed]] | None = None  # untracked

    def blocks(self) -> Iterator[tuple[str, Block]]:
        plan = self._plan
        for chunk in _run(plan, self._tree.workers):
            self._unlisted += chunk.unlisted
            self._untracked += chunk.untracked
            self._folders += chunk.folders
            self._unsettled += chunk.unsettled
            self._refused += chunk.refused
            for tier, lines in chunk.built.items():
                self._built[tier].append(lines)
            for source, block, crlf in zip(plan.sources, chunk.blocks, chunk.crlf, strict=False):
                if block is not None and source.tier is not None:
                    yield source.tier, self._settle(block, crlf)
            if self._progress is not None and chunk.listed:
                self._progress(chunk.listed)

    def _settle(self, block: Block, crlf: AbstractSet[str]) -> Block:
        """The block as git sees the tree: a file holding a CRLF hashed normalised when
        git stores it so, a folder that is a submodule as the commit it is at."""
        folders = [p for p, o in block.others if o.seen is Seen.DIRECTORY]
        if not crlf and not folders:
            return block
        settled = self._tree.submodules(folders)
        normalized = self._tree.normalized(sorted(crlf)) if crlf else frozenset()
        if normalized:
            settled.update(self._tree.observe(sorted(normalized)))
        if not settled:
            return block
        others = tuple((p, settled.get(p, o)) for p, o in block.others)
        return Block(
            start=block.start,
            end=block.end,
            lines=block.lines,
            others=others,
            targets=block.targets,
        )

    def unlisted(self) -> dict[str, list[tuple[str, Observed]]]:
        out: dict[str, list[tuple[str, Observed]]] = {t: [] for t in self._plan.tiers}
        found = self._unlisted + [
            (t, p, o) for t, p, o in self._untracked_candidates() if t is not None and t in out
        ]
        folders = [p for _, p, seen in found if seen.seen is Seen.DIRECTORY]
        settled = self._tree.submodules(folders)
        for tier, path, seen in found:
            out[tier].append((path, settled.get(path, seen)))
        for items in out.values():
            items.sort(key=lambda item: path_key(item[0]))
        return out

    def candidates(self) -> Iterator[str]:
        """Once the scan is read: every path git would list as a candidate (the index's,
        and the untracked files it does not ignore)."""
        if not self._plan.has_index:
            yield from walk_files(self._tree.root)
            return
        data = self._plan.sources[-1].data
        pos, previous = 0, None
        while (end := data.find(b"\0", pos)) != -1:
            key = data[pos:end]
            pos = end + 1
            if key != previous:  # a conflicted path has one entry per stage
                yield key.decode("utf-8", "surrogateescape")
            previous = key
        for _, path, _ in self._untracked_candidates():
            yield path

    def built(self) -> Built:
        extra: dict[str, list[bytes]] = {t: [] for t in self._plan.tiers}
        found = [
            (t, p, o) for t, p, o in self._untracked_candidates() if t is not None and t in extra
        ]
        unsettled = self._unsettled
        refused = self._refused + [p for _, p, _ in found if unsafe_path_reason(p) is not None]
        crlf = [p for _, p, seen in unsettled + found if seen.seen is Seen.FILE]
        folders = [p for _, p, seen in unsettled + found if seen.seen is Seen.DIRECTORY]
        settled = self._tree.submodules(folders)
        normalized = self._tree.normalized(sorted(crlf)) if crlf else frozenset()
        if normalized:
            settled.update(self._tree.observe(sorted(normalized)))
        for tier, path, seen in unsettled + found:
            entry = settled.get(path, seen).as_entry(path)
            if entry is not None:
                extra[tier].append((entry.line() + "\n").encode("utf-8", "surrogateescape"))
        lists: dict[str, tuple[bytes, int]] = {}
        for tier, parts in self._built.items():
            data = _insert_lines(b"".join(parts), extra[tier])
            lists[tier] = data, data.count(b"\n")
        return Built(lists=lists, unsafe=sorted(set(refused), key=path_key))

    def _untracked_candidates(self) -> list[tuple[str | None, str, Observed]]:
        """The untracked files the walk found that git does not ignore, with the tier the
        policy gives each (observed when it is a scanned tier); then the same for the
        untracked folders, one level per round of git's ignore rules (an ignored folder
        is never entered)."""
        if self._found is not None:
            return self._found
        pending, folders = self._untracked, self._folders
        self._untracked, self._folders = [], []
        found: list[tuple[str | None, str]] = []
        tier_of = self._tier_of
        while pending or folders:
            ignored = self._ignored([p for _, p in pending] + [f + "/" for f in folders])
            found += [(t, p) for t, p in pending if p not in ignored]
            pending, below = [], []
            for folder in folders:
                if folder + "/" in ignored or (self._tree.root / folder / ".git").exists():
                    continue  # ignored, or a repository of its own (git lists it as one)
                for name, is_dir in _list_untracked(self._tree.root, folder):
                    rel = f"{folder}/{name}"
                    if is_dir:
                        below.append(rel)
                    else:
                        pending.append((tier_of(rel), rel))
            folders = below
        tiers = self._plan.tiers
        seen = self._tree.observe(sorted({p for t, p in found if t is not None and t in tiers}))
        unseen = Observed(seen=Seen.OTHER, error="not looked at: no scanned tier")
        self._found = [
            (t, p, seen.get(p, unseen))
            for t, p in found
            if p not in seen or seen[p].seen is not Seen.MISSING
        ]
        return self._found

    def _ignored(self, paths: list[str]) -> Collection[str]:
        return self._tree.ignored(paths) if paths else ()


def _list_untracked(root: Path, folder: str) -> list[tuple[str, bool]]:
    """(name, is a folder) for the files, symlinks and folders in an untracked folder
    (fifos and the like are never candidates, as for git)."""
    out: list[tuple[str, bool]] = []
    try:
        with os.scandir(root / folder) as it:
            for entry in it:
                if entry.name == ".git":
                    continue
                if entry.is_dir(follow_symlinks=False):
                    out.append((entry.name, True))
                elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                    out.append((entry.name, False))
    except OSError:
        pass  # gone or unreadable meanwhile: nothing to list
    return out


def _insert_lines(data: bytes, lines: list[bytes]) -> bytes:
    """`data` (sorted list lines) with `lines` (sorted or not) merged in by key."""
    if not lines:
        return data
    lines.sort(key=lambda line: line_key(line[:-1]))
    source = _Source(tier="", data=data)
    parts: list[bytes] = []
    at = 0
    for line in lines:
        cut = source.find(line_key(line[:-1]), at)
        parts += (data[at:cut], line)
        at = cut
    parts.append(data[at:])
    return b"".join(parts)


# Large scans hash in forked processes: per-file work in Python (open, read, hash,
# lines) holds the GIL for small files, so threads cannot use a second core. Only where
# fork is the platform's own way (Linux); elsewhere threads.
_FORK = sys.platform.startswith("linux")
_FORK_MIN = 4096  # paths below which starting processes costs more than it saves
_CHUNK_PATHS = 2048  # paths per chunk: enough to spread the work, few enough results


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _use_processes(count: int) -> bool:
    # Forking while other threads run (the watcher's) could copy a lock one of them
    # holds into the child; then threads it is.
    return count >= _FORK_MIN and _FORK and _cpus() > 1 and threading.active_count() == 1


def _plan_chunks(sources: Sequence[_Source]) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Cut the sources at the same paths into runs of about `_CHUNK_PATHS` paths of the
    largest one. There is always one chunk: the first one lists the root folder."""
    if not sources:
        return ((),)
    lead = max(sources, key=lambda s: len(s.data))
    count = lead.data.count(lead.sep)
    step = max(1, len(lead.data) * _CHUNK_PATHS // max(count, 1))
    cuts = [0]
    while (at := lead.data.find(lead.sep, cuts[-1] + step) + 1) and at < len(lead.data):
        cuts.append(at)
    keys = [lead.key_at(c) for c in cuts[1:]]
    starts = [[0, *(s.find(k) for k in keys)] for s in sources]
    chunks = []
    for i in range(len(cuts)):
        chunks.append(
            tuple(
                (at[i], at[i + 1] if i + 1 < len(at) else len(s.data))
                for s, at in zip(sources, starts, strict=True)
            )
        )
    return tuple(chunks)


def _run(plan: _Plan, threads: int) -> Iterator[_Chunk]:
    """Every chunk's result, in order, as soon as it is ready."""
    count = sum(s.data.count(s.sep) for s in plan.sources)
    indexes = range(len(plan.chunks))
    if _use_processes(count):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Workers inherit the plan (the lists and the index) instead of receiving a copy:
        # they fork at the first submit, in this thread and before the pool starts its
        # own (forking a process that runs threads can deadlock). A worker that dies
        # fails the scan (BrokenProcessPool) instead of leaving it waiting.
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            _cpus(), mp_context=fork, initializer=_start_worker, initargs=(plan,)
        ) as pool:
            try:
                yield from pool.map(_chunk_in_worker, indexes)
            finally:
                pool.shutdown(cancel_futures=True)
        return
    if count >= _FORK_MIN:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:
            yield from pool.map(lambda i: _scan_chunk(plan, i), indexes)
        return
    for i in indexes:
        yield _scan_chunk(plan, i)


_WORKER_PLAN: list[_Plan] = []


def _start_worker(plan: _Plan) -> None:
    import signal

    # Ctrl-C is the parent's to handle; a short-lived worker makes only acyclic objects.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()
    _WORKER_PLAN.append(plan)


def _chunk_in_worker(index: int) -> _Chunk:
    return _scan_chunk(_WORKER_PLAN[0], index)


# A list line's path starts after the space that ends its kind (`manifest.line_key`);
# the lines were checked by `manifest.read_list`.
def _keys(source: _Source, items: list[bytes]) -> list[bytes]:
    if source.tier is None:
        return list(dict.fromkeys(items))  # a conflicted path has one entry per stage
    if any(line[64:65] != b" " for line in items):  # a SHA-1 gitlink's shorter id
        keys = [line[path_start(line) :] for line in items]
    else:
        keys = [line[line.index(b" ", 72) + 1 :] for line in items]
    if any(k[:1] == b'"' for k in keys):
        keys = [_quoted(k) if k[:1] == b'"' else k for k in keys]
    return keys


def _quoted(quoted: bytes) -> bytes:
    return path_key(unquote_path(quoted.decode("utf-8", "surrogateescape")))


def _scan_chunk(plan: _Plan, index: int) -> _Chunk:
    """Walk one chunk: observe each listed path (and each tracked one the policy gives
    a scanned tier), list the folders this chunk is the first to enter, and sort what
    it finds into blocks, candidates and untracked leftovers.

    In three steps: what to do with each path (`actions`), the walk itself (`_walk`, or
    `_walk_pure` without the accelerator: folders, names, hashes), and sorting out what
    the walk found."""
    ranges = plan.chunks[index]
    sources = plan.sources
    items: list[list[bytes]] = []
    keys: list[list[bytes]] = []
    for source, (start, end) in zip(sources, ranges, strict=True):
        part = source.data[start:end].split(source.sep)
        part.pop()
        items.append(part)
        keys.append(_keys(source, part))
    lists = [j for j, s in enumerate(sources) if s.tier is not None]
    list_tiers = [sources[j].tier or "" for j in lists]
    index_at = len(sources) - 1 if plan.has_index else None
    # The paths in order, and for each: which lists hold it (list number, line).
    if len(keys) <= 1 or all(k == keys[0] for k in keys[1:]):
        order = keys[0] if keys else []
        listed: list[list[tuple[int, bytes]]] | None = None  # every list holds every path
        tracked_all = index_at is not None or not plan.has_index
        tracked: list[bool] | None = None
    else:
        order = sorted(set().union(*keys))
        where = [dict(zip(k, range(len(k)), strict=True)) for k in keys]
        listed = [
            [
                (n, items[j][at])
                for n, j in enumerate(lists)
                if (at := where[j].get(key)) is not None
            ]
            for key in order
        ]
        in_index = where[index_at] if index_at is not None else None
        tracked = [in_index is None or key in in_index for key in order] if plan.has_index else None
        tracked_all = not plan.has_index
    paths = [key.decode("utf-8", "surrogateescape") for key in order]
    tiers = list(map(plan.tier_of, paths))
    safe = _all_safe(order)
    actions = bytearray(len(order))
    wanted = plan.tiers
    refused: list[str] = []
    for i, path in enumerate(paths):
        unsafe = not safe and not _safe(path)
        if unsafe and plan.build and tiers[i] in wanted:
            refused.append(path)  # `sign` refuses it: verify would reject it
        if unsafe and not _walkable(path):
            actions[i] = _SKIP  # would lead out of the tree: never looked at
            continue
        in_lists = (listed is None and bool(lists)) or (listed is not None and bool(listed[i]))
        if unsafe and (in_lists or plan.build):
            # An unsafe entry is never looked at (its line stays unmatched), but it
            # still names a file of its folder, which is then no leftover.
            actions[i] = _CLAIM
            continue
        is_tracked = tracked_all if tracked is None else tracked[i]
        tier = tiers[i]
        if in_lists or (tier in wanted and is_tracked):
            actions[i] = _HASH
        else:
            actions[i] = _CLAIM
    previous = [k for s, (start, _) in zip(sources, ranges, strict=True) if (k := s.before(start))]
    walk = _walk if _walk is not None else _walk_pure
    records, leftovers = walk(
        plan.root, order, bytes(actions), index == 0, max(previous, default=None)
    )
    out = _Output(plan, list_tiers)
    found = _Found(plan, order, paths, tiers, actions, records)
    if plan.build:
        found.build(out)
    elif listed is None and len(lists) == 1:
        quoted = any(b'"' in sources[j].data[slice(*ranges[j])] for j in lists)
        found.one_list(out, items[lists[0]] if quoted else None, tracked_all)
    else:
        if listed is None:
            listed = [[(n, items[j][i]) for n, j in enumerate(lists)] for i in range(len(order))]
        found.lists(out, listed, tracked_all if tracked is None else tracked)
    for final, rel, name, kind in leftovers:
        leftover = rel + b"/" + name if rel else name
        if not final and _later(sources, [end for _, end in ranges], leftover):
            continue  # a later chunk's path or folder
        path = leftover.decode("utf-8", "surrogateescape")
        if kind == b"d":
            out.folders.append(path)  # the parent asks git: ignored?
        elif kind == b"f":  # every one: `candidates` names them all
            out.untracked.append((plan.tier_of(path), path))
    return _Chunk(
        blocks=tuple(
            None if s.tier is None else out.block(lists.index(j), *ranges[j])
            for j, s in enumerate(sources)
        ),
        crlf=tuple(
            frozenset() if s.tier is None else frozenset(out.crlf[lists.index(j)])
            for j, s in enumerate(sources)
        ),
        built={t: b"".join(parts) for t, parts in out.built.items() if parts},
        unsettled=tuple(out.unsettled),
        refused=tuple(refused),
        unlisted=tuple(out.unlisted),
        untracked=tuple(out.untracked),
        folders=tuple(out.folders),
        listed=sum(len(items[j]) for j in lists),
    )


def _later(sources: Sequence[_Source], ends: list[int], key: bytes) -> bool:
    """Whether a source names `key`, or a path below it, after this chunk. The index
    (last, when there is one) first: it holds most paths and its keys need no parsing."""
    for source, end in reversed(list(zip(sources, ends, strict=True))):
        at = source.find(key, end)
        if at < len(source.data):
            found = source.key_at(at)
            if found == key or found.startswith(key + b"/"):
                return True
    return False


class _Found:
    """What a walk found for each path of a chunk, sorted into the chunk's output."""

    def __init__(
        self,
        plan: _Plan,
        keys: list[bytes],
        paths: list[str],
        tiers: list[str | None],
        actions: bytearray,
        records: bytes,
    ):
        self.plan = plan
        self.keys, self.paths, self.tiers = keys, paths, tiers
        self.actions = actions
        self.records = records
        self.hexed = binascii.hexlify(records)  # 66 hex digits per record: status, hash
        self._look: tuple[FolderCheck, bytearray] | None = None  # for observe_path

    def seen(self, i: int) -> tuple[bytes, int] | Observed:
        """(hex digest, exec bit) of a regular file the walk hashed (byte for byte); else
        what `observe_path` says the path is (hashed byte for byte too)."""
        status = self.records[i * _RECORD]
        if status & 3 in (_ST_FILE, _ST_EXEC):
            hexed = self.hexed[i * 2 * _RECORD + 2 : (i + 1) * 2 * _RECORD]
            return hexed, status & 3 == _ST_EXEC
        if self._look is None:
            self._look = FolderCheck(self.plan.root), bytearray(_CHUNK)
        dir_ok, buffer = self._look
        path = self.paths[i]
        return observe_path(self.plan.root, path, normalize_eol=False, dir_ok=dir_ok, buffer=buffer)

    def unsettled(self, i: int, seen: tuple[bytes, int] | Observed) -> bool:
        """Whether git's line-end rules may change the hash: a file holding a CRLF, or
        one `observe_path` read (the parent asks git about both)."""
        if isinstance(seen, tuple):
            return bool(self.records[i * _RECORD] & _ST_CRLF)
        return seen.seen is Seen.FILE

    def one_list(self, out: _Output, quoted: list[bytes] | None, tracked: bool) -> None:
        """The usual case: one list, and every path on it (`quoted`: its lines, when a
        path in them is quoted; else each key is the path as written)."""
        parts = out.parts[0]
        tier = out.list_tiers[0]
        wanted = self.plan.tiers
        actions, records, hexed, keys, tiers = (
            self.actions,
            self.records,
            self.hexed,
            self.keys,
            self.tiers,
        )
        for i in range(len(keys)):
            if actions[i] < _HASH:
                continue
            portion = keys[i] if quoted is None else _portion(quoted[i])
            status = records[i * _RECORD]
            seen: tuple[bytes, int] | Observed
            if status in (_ST_FILE, _ST_EXEC):  # the usual case: a plain file, no CRLF
                digest = hexed[i * 2 * _RECORD + 2 : (i + 1) * 2 * _RECORD]
                parts += (digest, _EXEC_HEAD if status == _ST_EXEC else _FILE_HEAD, portion, _NL)
                seen = (digest, status == _ST_EXEC)
            else:
                seen = self.seen(i)
                out.line(0, self.paths[i], portion, seen, unsettled=self.unsettled(i, seen))
            assigned = tiers[i]
            if assigned is not None and assigned != tier and assigned in wanted:
                self.assigned(out, i, assigned, seen, tracked)

    def lists(
        self, out: _Output, listed: list[list[tuple[int, bytes]]], tracked: bool | list[bool]
    ) -> None:
        """Several lists: each path on the lists that hold it."""
        wanted = self.plan.tiers
        for i in range(len(self.keys)):
            if self.actions[i] < _HASH:
                continue
            seen = self.seen(i)
            unsettled = self.unsettled(i, seen)
            for n, line in listed[i]:
                out.line(n, self.paths[i], _portion(line), seen, unsettled=unsettled)
            assigned = self.tiers[i]
            if (
                assigned is not None
                and assigned in wanted
                and all(out.list_tiers[n] != assigned for n, _ in listed[i])
            ):
                self.assigned(
                    out, i, assigned, seen, tracked if isinstance(tracked, bool) else tracked[i]
                )

    def build(self, out: _Output) -> None:
        """Building lists (`sign`): each tracked path the policy gives a tier, its line;
        a file git may normalise, or a folder (a submodule?), the parent settles."""
        built = out.built
        for i in range(len(self.keys)):
            if self.actions[i] < _HASH:
                continue
            tier = self.tiers[i]
            if tier is None:
                continue
            path = self.paths[i]
            seen = self.seen(i)
            if self.unsettled(i, seen):
                observed = seen if isinstance(seen, Observed) else _file(seen)
                out.unsettled.append((tier, path, observed))
            elif isinstance(seen, tuple):
                quoted = quote_path(path)
                portion = (
                    self.keys[i] if quoted is path else quoted.encode("utf-8", "surrogateescape")
                )
                built[tier] += (seen[0], _EXEC_HEAD if seen[1] else _FILE_HEAD, portion, _NL)
            elif seen.seen is Seen.DIRECTORY:
                out.unsettled.append((tier, path, seen))
            elif (entry := seen.as_entry(path)) is not None:
                built[tier].append((entry.line() + "\n").encode("utf-8", "surrogateescape"))

    def assigned(
        self, out: _Output, i: int, tier: str, seen: tuple[bytes, int] | Observed, tracked: bool
    ) -> None:
        """A path the policy gives `tier` that is not on that tier's list."""
        observed = seen if isinstance(seen, Observed) else _file(seen)
        if not tracked:
            # Untracked: a candidate if git's own walk would list it (a file or symlink
            # in real folders) and does not ignore it.
            if _plain_observation(observed):
                out.untracked.append((tier, self.paths[i]))
        else:
            out.unlisted.append((tier, self.paths[i], observed))


def _portion(line: bytes) -> bytes:
    """A list line's path as written (quoted or not)."""
    return line[path_start(line) :]


class _Output:
    """What one chunk found, gathered as its results are sorted out."""

    def __init__(self, plan: _Plan, list_tiers: list[str]):
        self.list_tiers = list_tiers
        self.parts: list[list[bytes]] = [[] for _ in list_tiers]
        self.others: list[list[tuple[str, Observed]]] = [[] for _ in list_tiers]
        self.targets: list[dict[str, str]] = [{} for _ in list_tiers]
        self.crlf: list[set[str]] = [set() for _ in list_tiers]
        self.built: dict[str, list[bytes]] = {t: [] for t in plan.tiers} if plan.build else {}
        self.unsettled: list[tuple[str, str, Observed]] = []
        self.unlisted: list[tuple[str, str, Observed]] = []
        self.untracked: list[tuple[str | None, str]] = []
        self.folders: list[str] = []

    def block(self, n: int, start: int, end: int) -> Block:
        return Block(
            start=start,
            end=end,
            lines=b"".join(self.parts[n]),
            others=tuple(self.others[n]),
            targets=self.targets[n],
        )

    def line(
        self,
        n: int,
        path: str,
        portion: bytes,
        seen: tuple[bytes, int] | Observed,
        *,
        unsettled: bool = False,
    ) -> None:
        """The tree's line for a path of list `n`, or what the path is instead (among the
        block's `others`, also while git's line-end rules may change its hash)."""
        if unsettled:
            observed = seen if isinstance(seen, Observed) else _file(seen)
            self.others[n].append((path, observed))
            self.crlf[n].add(path)
        elif isinstance(seen, tuple):
            self.parts[n] += (seen[0], _EXEC_HEAD if seen[1] else _FILE_HEAD, portion, _NL)
        elif _plain_observation(seen):
            # What `Entry.line` writes between the hash and the path.
            head = f" {seen.mode} {seen.seen.value} ".encode()
            self.parts[n] += ((seen.sha256 or "").encode(), head, portion, _NL)
            if seen.target is not None:
                self.targets[n][path] = seen.target
        else:
            self.others[n].append((path, seen))


_FILE_HEAD = b" 100644 file "
_EXEC_HEAD = b" 100755 file "
_NL = b"\n"
# What a walk does with a path (its `actions`), and what it found (the status byte of
# its 33-byte record, then the SHA-256).
_SKIP, _CLAIM, _HASH = 0, 1, 2
_ST_NONE, _ST_FILE, _ST_EXEC, _ST_PYTHON, _ST_CRLF = 0, 1, 2, 3, 4  # CRLF: a flag
_RECORD = 33
# A chunk of paths none of which `unsafe_path_reason` could object to: checked on the
# chunk's joined keys at once (an empty path, one starting "/", "." or "X:", ending "/",
# or holding "//", "/.", a backslash or NUL; see `manifest._maybe_unsafe`).
_UNSAFE_BITS = (b"\n\n", b"\n/", b"\n.", b"/\n", b"//", b"/.", b"\\", b"\0")


def _all_safe(keys: list[bytes]) -> bool:
    joined = b"\n" + b"\n".join(keys) + b"\n"
    if any(bit in joined for bit in _UNSAFE_BITS):
        return False
    return not any(k[1:2] == b":" for k in keys) if b":" in joined else True


def _safe(path: str) -> bool:
    return unsafe_path_reason(path) is None


def _walkable(path: str) -> bool:
    """A path that stays inside the tree (no empty, "." or ".." part, not absolute)."""
    parts = path.split("/")
    return bool(path) and path[0] != "/" and not any(p in ("", ".", "..") for p in parts)


def _walkable_key(key: bytes) -> bool:
    return (
        bool(key)
        and key[:1] != b"/"
        and b"\0" not in key
        and _walkable(key.decode("utf-8", "surrogateescape"))
    )


def _walk_pure(
    root: str, keys: list[bytes], actions: bytes, owns_root: bool, previous: bytes | None
) -> tuple[bytes, list[tuple[bool, bytes, bytes, bytes]]]:
    """The walk of a chunk: what `_walk.c` does, in Python (see there)."""
    walker = _PureWalk(root, owns_root, previous)
    records = bytearray(len(keys) * _RECORD)
    checked = _all_safe(keys)  # else each path is checked: it must stay in the tree
    try:
        for i, key in enumerate(keys):
            act = actions[i]
            if act == _SKIP or not (checked or _walkable_key(key)):
                continue
            parent, _, name = key.rpartition(b"/")
            folder, names = walker.enter(parent)
            if names is not None:
                names.discard(name)
            if act == _CLAIM:
                continue
            at = i * _RECORD
            found = None
            if folder is not None and act == _HASH and len(name) <= 255:
                found = _read_file(folder, name, walker.view, walker.buffer)
            if found is None:
                records[at] = _ST_PYTHON
            else:
                digest, executable, crlf = found
                records[at] = (_ST_EXEC if executable else _ST_FILE) | (_ST_CRLF if crlf else 0)
                records[at + 1 : at + _RECORD] = digest
    finally:
        walker.close()
    return bytes(records), walker.leftovers


class _PureWalk:
    """The folders down to the current path, each opened relative to its parent with
    O_NOFOLLOW (a symlinked folder fails to open), and the names of those this chunk
    lists that no path has claimed yet: when the walk leaves such a folder, they are
    the files and folders no source names."""

    def __init__(self, root: str, owns_root: bool, previous: bytes | None):
        self.previous = previous  # the last safe path before this chunk
        self.first = True
        self.buffer = bytearray(_CHUNK)
        self.view = memoryview(self.buffer)
        self.leftovers: list[tuple[bool, bytes, bytes, bytes]] = []
        try:
            root_fd: int | None = os.open(root, os.O_RDONLY)
        except OSError:
            root_fd = None
        # (relative path, descriptor or None, unclaimed names of a listed folder or None)
        self.stack: list[tuple[bytes, int | None, set[bytes] | None]] = [
            (b"", root_fd, _names(root_fd) if owns_root else None)
        ]

    def enter(self, parent: bytes) -> tuple[int | None, set[bytes] | None]:
        """Walk to the folder `parent`, opening and listing what is new on the way."""
        stack = self.stack
        while len(stack) > 1 and not (
            parent == stack[-1][0] or parent.startswith(stack[-1][0] + b"/")
        ):
            self.leave(*stack.pop(), final=True)
        top, top_fd, top_names = stack[-1]
        if parent != top:
            rest = parent[len(top) + 1 :] if top else parent
            for name in rest.split(b"/"):
                rel = top + b"/" + name if top else name
                fd = None
                if top_fd is not None and len(name) <= 255:
                    try:
                        fd = os.open(name, _DIR_FLAGS, dir_fd=top_fd)
                    except OSError:
                        fd = None  # a file, symlink or nothing there: stays a leftover
                if fd is not None and top_names is not None:
                    top_names.discard(name)
                # A folder is listed by the chunk that reaches it first.
                new = not self.first or self.previous is None
                new = new or not self.previous.startswith(rel + b"/")  # type: ignore[union-attr]
                top, top_fd, top_names = rel, fd, _names(fd) if new else None
                stack.append((top, top_fd, top_names))
        self.first = False
        return top_fd, top_names

    def leave(self, rel: bytes, fd: int | None, names: set[bytes] | None, *, final: bool) -> None:
        try:
            for name in sorted(names or ()):
                try:
                    mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
                except OSError:
                    continue  # gone since listed
                kind = b"d" if stat.S_ISDIR(mode) else b"o"
                if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                    kind = b"f"
                self.leftovers.append((final, rel, name, kind))
        finally:
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        """Leave every folder still open: the chunk ends inside them."""
        while self.stack:
            self.leave(*self.stack.pop(), final=False)


def _names(fd: int | None) -> set[bytes] | None:
    """The names in an open folder (not `.git`: git's own, never a candidate)."""
    if fd is None:
        return None
    try:
        with os.scandir(fd) as it:
            names = {os.fsencode(e.name) for e in it}
    except OSError:
        return None
    names.discard(b".git")
    return names


def _read_file(
    folder: int, name: bytes, view: memoryview, buffer: bytearray
) -> tuple[bytes, int, bool] | None:
    """(SHA-256, exec bit, whether git's line-end rules may change the hash: it holds a
    CRLF and is not binary) of a regular file opened in its folder: the usual case. None
    for anything else, or any error: `observe_path` then says what it is."""
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=folder)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        size = st.st_size
        h = hashlib.sha256()
        want = size + 1 if size < _CHUNK else _CHUNK  # one byte more proves the end
        crlf = last_cr = False
        binary: bool | None = None
        while True:
            n = _read_into(fd, view[:want])
            h.update(view[:n])
            if binary is None:  # git's test on the first 8000 bytes (`looks_binary`)
                head = min(n, 8000)
                binary = buffer.find(b"\0", 0, head) != -1 or buffer.count(
                    b"\r", 0, head
                ) > buffer.count(b"\r\n", 0, head)
            if n and not crlf and not binary:  # a CRLF, perhaps across two reads
                crlf = (last_cr and view[0] == 10) or buffer.find(b"\r\n", 0, n) != -1
            last_cr = n > 0 and view[n - 1] == 13
            if n < want:
                break
            want = _CHUNK
        return h.digest(), st.st_mode & stat.S_IXUSR, crlf and not binary
    except OSError:
        return None
    finally:
        os.close(fd)


def _file(seen: tuple[bytes, int]) -> Observed:
    return Observed(
        seen=Seen.FILE, sha256=seen[0].decode(), mode=MODE_EXEC if seen[1] else MODE_FILE
    )
