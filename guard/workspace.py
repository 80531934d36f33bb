"""Finding the repository and its configuration files in the working tree.

`[tool.qeguard]` in pyproject.toml may name another policy file (`policy = "path"`).
Trust decisions never use this module alone: see `guard.gitio` for reading the same
files from a commit.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from guard.errors import ConfigError
from guard.policy import POLICY_PATH, Policy, parse_policy


@dataclass(frozen=True, kw_only=True, slots=True)
class Workspace:
    root: Path
    is_git: bool

    @property
    def policy_path(self) -> str:
        """The policy file, relative to the root (POSIX)."""
        return policy_path_for(self.root)


def find_workspace(start: Path | None = None) -> Workspace:
    """The git work tree containing `start` (default: the current folder), else `start`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return Workspace(root=folder, is_git=True)
    return Workspace(root=here, is_git=False)


def policy_path_for(root: Path) -> str:
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return POLICY_PATH  # pyproject's own problems are not the guard's to report here
        tool = data.get("tool", {}).get("qeguard", {})
        custom = tool.get("policy") if isinstance(tool, dict) else None
        if custom is not None:
            if not isinstance(custom, str) or custom.startswith("/") or ".." in custom.split("/"):
                raise ConfigError(
                    "`policy` must be a relative path inside the repository",
                    where="pyproject.toml: tool.qeguard.policy",
                )
            return custom
    return POLICY_PATH


def load_policy(root: Path, *, required: bool = True) -> Policy | None:
    """The working tree's policy, or None when there is none and `required` is False."""
    rel = policy_path_for(root)
    path = root / rel
    if not path.is_file():
        if not required:
            return None
        raise ConfigError(
            "no policy found",
            where=rel,
            hint="run `qeguard init --preset default` (or qemlflow, strict)",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the policy: {exc}", where=rel) from None
    return parse_policy(text, source=rel)
