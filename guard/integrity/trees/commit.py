"""The files of one commit, as a `Tree` for verification."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from qeguard.git import GIT_EXEC, GIT_LINK, GIT_SUBMODULE, GitRepo
from qeguard.integrity.manifest import MODE_EXEC, MODE_FILE, MODE_LINK
from qeguard.integrity.trees.base import Observed, ScannedByPath, Seen, gitlink

# A symlink's target is a path: anything longer is no target any system would follow.
_MAX_TARGET = 4096


class CommitTree(ScannedByPath):
    """The files of one commit, as a `Tree` for verification."""

    exec_bit_meaningful = True

    def __init__(self, repo: GitRepo, rev: str):
        self.repo = repo
        self.rev = repo.resolve(rev)
        self.label = f"commit {self.rev[:12]}"
        self._commit = repo.repo.commit(self.rev)

    def candidates(self) -> list[str]:
        # Blobs and gitlinks (submodules); git never records anything else in a tree.
        items: list[Any] = list(self._commit.tree.traverse())
        return [str(item.path) for item in items if item.type in ("blob", "submodule")]

    def read(self, path: str) -> bytes | None:
        return self.repo.read_at(self.rev, path)

    def observe(self, paths: Sequence[str]) -> dict[str, Observed]:
        out: dict[str, Observed] = {}
        for path in paths:
            try:
                item = self._commit.tree / path
            except KeyError:
                out[path] = Observed(seen=Seen.MISSING)
                continue
            out[path] = observe_object(self.repo, item.type, item.mode, item.hexsha)
        return out


def observe_object(repo: GitRepo, kind: str, mode: int, hexsha: str) -> Observed:
    """An entry of a git tree or the index, observed the way the working tree would be.

    A file blob is streamed into the hasher, never read whole. Blobs are already in
    git's clean form: no line-end conversion.
    """
    if kind == "tree":
        return Observed(seen=Seen.DIRECTORY)
    if kind in ("submodule", "commit") or mode == GIT_SUBMODULE:
        return gitlink(hexsha)
    if kind != "blob":
        return Observed(seen=Seen.OTHER, error=f"git object of type {kind}")
    digest, size = repo.blob_digest(hexsha)
    if mode == GIT_LINK:
        if size > _MAX_TARGET:
            return Observed(seen=Seen.OTHER, error=f"a symlink whose target is {size} bytes")
        return Observed(
            seen=Seen.SYMLINK,
            sha256=digest,
            mode=MODE_LINK,
            target=os.fsdecode(repo.read_blob(hexsha)),
        )
    mode_text = MODE_EXEC if mode == GIT_EXEC else MODE_FILE
    return Observed(seen=Seen.FILE, sha256=digest, mode=mode_text)
