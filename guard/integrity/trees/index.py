"""The staged state (git's index), as a `Tree` for the pre-commit hook."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from qeguard.git import GIT_EXEC, GIT_FILE, GitRepo, IndexEntry
from qeguard.integrity.trees.base import Observed, ScannedByPath, Seen
from qeguard.integrity.trees.commit import observe_object


class IndexTree(ScannedByPath):
    """The staged state (git's index) as a `Tree`: what the next commit would hold.

    Observations come from the staged blobs, never from the working tree, so a file that
    is clean on disk but staged differently is judged by what will be committed.
    """

    label = "staged index"
    # The index records the exec bit even where the file system has none.
    exec_bit_meaningful = True

    def __init__(self, repo: GitRepo):
        self.repo = repo
        self._entries: dict[str, IndexEntry | None] = {}
        self._complete = False
        self._wanted: set[str] = set()  # prefetched, looked up with the next lookup

    def _lookup(self, paths: Iterable[str]) -> None:
        missing = [p for p in paths if p not in self._entries]
        if not missing or self._complete:
            return
        missing += [p for p in self._wanted if p not in self._entries]
        self._wanted.clear()
        found = self.repo.index_entries(missing)
        for p in missing:
            self._entries[p] = found.get(p)

    def prefetch(self, paths: Iterable[str]) -> None:
        """Paths to look up with the next lookup: one `git ls-files` for all of them."""
        self._wanted.update(paths)

    def candidates(self) -> list[str]:
        if not self._complete:
            found = self.repo.index_entries()
            self._entries = {**dict.fromkeys(self._entries), **found}
            self._complete = True
            self._wanted.clear()
        return [p for p, e in self._entries.items() if e is not None]

    def blob_id(self, path: str) -> str | None:
        """The staged object id of `path` (None when not staged or conflicted)."""
        self._lookup([path])
        entry = self._entries.get(path)
        return entry.hexsha if entry is not None and entry.stage == 0 else None

    def read(self, path: str) -> bytes | None:
        self._lookup([path])
        entry = self._entries.get(path)
        if entry is None or entry.stage != 0 or entry.mode not in (GIT_FILE, GIT_EXEC):
            return None
        return self.repo.read_blob(entry.hexsha)

    def observe(self, paths: Sequence[str]) -> dict[str, Observed]:
        self._lookup(paths)
        out: dict[str, Observed] = {}
        for path in paths:
            entry = self._entries.get(path)
            if entry is None:
                out[path] = Observed(seen=Seen.MISSING)
            elif entry.stage != 0:
                out[path] = Observed(seen=Seen.OTHER, error="unmerged (merge conflict)")
            else:
                # A gitlink (mode 160000) is the submodule commit the next commit records.
                out[path] = observe_object(self.repo, "blob", entry.mode, entry.hexsha)
        return out
