"""Commands that findings and messages tell the user to run.

Every printed command goes through `Hints`, so that it can be made correct where it is
printed (shell-quoted, paths relative to the user's folder, index-aware in the hook
modes) in this one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True, slots=True)
class Hints:
    root: Path | None = None  # the repository root
    cwd: Path | None = None  # the folder the user runs qeguard from
    staged: bool = False  # a hook mode: a fix must reach the index, not only the work tree

    def path(self, rel: str) -> str:
        """A repository path as the user should type it."""
        return rel

    def sign(self, tier: str) -> str:
        return f"qeguard sign --tier {tier} --key KEY && git add .qeguard"

    def restore(self, rel: str) -> str:
        return f"qeguard restore {self.path(rel)}"

    def submodule_update(self, rel: str) -> str:
        return f"git submodule update --init -- {self.path(rel)}"

    def chmod(self, rel: str, *, executable: bool) -> str:
        return f"chmod {'+x' if executable else '-x'} {self.path(rel)}"


DEFAULT = Hints()
