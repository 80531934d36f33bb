"""Commands that findings and messages tell the user to run.

Every printed command goes through `Hints`, so that it is correct where it is printed:
each word shell-quoted, paths relative to the folder the user runs qeguard from (that
folder is where a pasted `qeguard restore PATH` resolves PATH, and where git resolves a
pathspec), and index-aware in the hook modes (there a fix must reach the index: the next
commit checks what is staged, not the work tree).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

# What every re-sign hint commits: the manifests (and policy and trust) live there.
_CONFIG_DIR = ".qeguard"


@dataclass(frozen=True, kw_only=True, slots=True)
class Hints:
    root: Path | None = None  # the repository root
    cwd: Path | None = None  # the folder the user runs qeguard from
    staged: bool = False  # a hook mode: a fix must reach the index, not only the work tree

    @classmethod
    def here(cls, root: Path, *, staged: bool = False) -> Hints:
        """Hints for a command run now, from the current folder."""
        return cls(root=root, cwd=Path.cwd(), staged=staged)

    @property
    def _outside(self) -> bool:
        """The user is outside the repository (they used `-C`): a pasted qeguard or git
        command must then name the repository, and its paths are relative to the root."""
        if self.root is None or self.cwd is None:
            return False
        rel = os.path.relpath(self.cwd.resolve(), self.root.resolve())
        return rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel)

    def _from_cwd(self, rel: str) -> str:
        """A repository path (POSIX, from the root) as a shell in the user's folder sees it."""
        if self.root is None or self.cwd is None:
            return rel
        full = os.path.join(self.root.resolve(), *rel.split("/"))
        return os.path.relpath(full, self.cwd.resolve()).replace(os.sep, "/")

    def _where(self, rel: str) -> str:
        """A repository path as an argument of `qeguard`/`git` (relative to `-C` outside);
        never one that reads as an option."""
        shown = rel if self._outside else self._from_cwd(rel)
        return f"./{shown}" if shown.startswith("-") else shown

    def _pathspec(self, rel: str) -> str:
        """A path git takes as itself: `a[1].py` is not a pattern there."""
        where = self._where(rel)
        return f":(literal){where}" if any(c in where for c in "*?[:") else where

    def path(self, rel: str) -> str:
        """A repository path as the user should type it (relative to their folder, or to
        the root from outside the repository), quoted."""
        return shlex.quote(self._where(rel))

    def qeguard(self, *words: str) -> str:
        """`qeguard WORDS...`, with `-C ROOT` when the user is outside the repository."""
        return _join("qeguard", *self._chdir(), *words)

    def git(self, *words: str) -> str:
        """`git WORDS...`, with `-C ROOT` when the user is outside the repository."""
        return _join("git", *self._chdir(), *words)

    def _chdir(self) -> tuple[str, ...]:
        return ("-C", str(self.root)) if self._outside and self.root is not None else ()

    def stage(self, *rels: str) -> str:
        """`git add PATHS` for repository paths."""
        return self.git("add", *(self._pathspec(r) for r in rels))

    def untrack(self, rel: str) -> str:
        """Stop tracking a file but keep it on disk."""
        return self.git("rm", "--cached", "--", self._pathspec(rel))

    def sign(self, tier: str) -> str:
        return f"{self.qeguard('sign', '--tier', tier, '--key', 'KEY')} && {self.commit_config()}"

    def commit_config(self) -> str:
        """Stage the signed manifests (and policy and trust) for the next commit."""
        return self.stage(_CONFIG_DIR)

    def restore(self, rel: str) -> str:
        command = self.qeguard("restore", self._where(rel))
        return f"{command} && {self.stage(rel)}" if self.staged else command

    def submodule_update(self, rel: str) -> str:
        return f"git submodule update --init -- {self.path(rel)}"

    def chmod(self, rel: str, *, executable: bool) -> str:
        shown = self._from_cwd(rel)
        command = _join(
            "chmod", "+x" if executable else "-x", f"./{shown}" if shown[0] == "-" else shown
        )
        return f"{command} && {self.stage(rel)}" if self.staged else command

    def unshallow(self) -> str:
        """Fetch the history a shallow clone lacks (the trust walk needs it)."""
        return self.git("fetch", "--unshallow")

    def rebase(self, ref: str) -> str:
        return self.git("rebase", ref)

    def run_in(self, folder: str | None, *words: str) -> str:
        """Any tool's command line; with `folder` (a repository folder, POSIX from the root,
        or an absolute path), run there: `cd FOLDER && ...` from the user's folder (absolute
        from outside the repository), unless they are in it. Lockers (uv, poetry, pdm) act
        on the project of the folder they run in."""
        command = _join(*words)
        if folder is None:
            return command
        if not os.path.isabs(folder) and self._outside and self.root is not None:
            # From outside the repository: absolute, as `-C` names the root.
            folder = os.path.normpath(os.path.join(self.root, *folder.split("/")))
        shown = folder if os.path.isabs(folder) else self._from_cwd(folder or ".")
        shown = shown.replace(os.sep, "/")
        if shown == ".":
            return command
        return f"cd {shlex.quote(f'./{shown}' if shown.startswith('-') else shown)} && {command}"

    def pin_root(self, commit: str) -> str:
        """Verify with trust walked from a pinned root."""
        return self.qeguard("verify", "--trust-root", commit)


def _join(*words: str) -> str:
    return shlex.join(words)


DEFAULT = Hints()
