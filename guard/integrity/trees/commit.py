"""The files of one commit, as a `Tree` for verification."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qeguard.git import GIT_EXEC, GIT_LINK, GitRepo
from qeguard.integrity.manifest import MODE_EXEC, MODE_FILE, MODE_LINK, EntryList
from qeguard.integrity.trees.base import Observed, PathScan, Seen, hash_bytes, scan_paths


class CommitTree:
    """The files of one commit, as a `Tree` for verification."""

    exec_bit_meaningful = True

    def __init__(self, repo: GitRepo, rev: str):
        self.repo = repo
        self.rev = repo.resolve(rev)
        self.label = f"commit {self.rev[:12]}"
        self._commit = repo.repo.commit(self.rev)

    def candidates(self) -> list[str]:
        items: list[Any] = list(self._commit.tree.traverse())
        return [str(item.path) for item in items if item.type == "blob"]

    def read(self, path: str) -> bytes | None:
        return self.repo.read_at(self.rev, path)

    def prepare(self, *, whole: bool) -> None:
        pass  # git's objects are read when asked for

    def scan(
        self,
        lists: Mapping[str, EntryList],
        tier_of: Callable[[str], str | None],
        *,
        only: frozenset[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PathScan:
        return scan_paths(self, lists, tier_of, only=only)

    def observe(self, paths: Sequence[str]) -> dict[str, Observed]:
        out: dict[str, Observed] = {}
        for path in paths:
            try:
                item = self._commit.tree / path
            except KeyError:
                out[path] = Observed(seen=Seen.MISSING)
                continue
            out[path] = observe_blob(
                item.type, item.mode, item.data_stream.read() if item.type == "blob" else b""
            )
        return out


def observe_blob(kind: str, mode: int, data: bytes) -> Observed:
    """An object from git's database, observed the way the working tree would be."""
    if kind == "tree":
        return Observed(seen=Seen.DIRECTORY)
    if kind != "blob":
        return Observed(seen=Seen.OTHER, error=f"git object of type {kind}")
    if mode == GIT_LINK:
        return Observed(
            seen=Seen.SYMLINK,
            sha256=hashlib.sha256(data).hexdigest(),
            mode=MODE_LINK,
            target=os.fsdecode(data),
        )
    # Blobs are already in git's clean form: no line-end conversion.
    return Observed(
        seen=Seen.FILE,
        sha256=hash_bytes(data, normalize_eol=False),
        mode=MODE_EXEC if mode == GIT_EXEC else MODE_FILE,
    )
