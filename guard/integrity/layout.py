"""Where every qeguard file lives in a protected repository: the one source of truth.

Policy and trust live at one fixed place, `.qeguard/`. Nothing in the tree under test may
redirect where they are read from (a `[tool.qeguard] policy = ...` setting once did, and a
branch could point it at a weak file on main), so no setting exists for it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from qeguard.errors import ConfigError

QEGUARD_DIR = ".qeguard"
POLICY_PATH = f"{QEGUARD_DIR}/policy.toml"
TRUST_PATH = f"{QEGUARD_DIR}/trust.toml"
MANIFEST_DIR = f"{QEGUARD_DIR}/manifests"
QUARANTINE_DIR = f"{QEGUARD_DIR}/quarantine"
# The trust root: always protected by the strictest tier, whatever the patterns say.
CONFIG_PATHS = (POLICY_PATH, TRUST_PATH)


def list_path(tier: str) -> str:
    """The tier's entry list, relative to the repository root."""
    return f"{MANIFEST_DIR}/{tier}.list"


def envelope_path(tier: str) -> str:
    """The tier's signed DSSE envelope, relative to the repository root."""
    return f"{MANIFEST_DIR}/{tier}.dsse.json"


def is_manifest_path(path: str) -> bool:
    """Manifests are never entries: their envelopes' signatures protect them."""
    return path.startswith(MANIFEST_DIR + "/")


@dataclass(frozen=True, kw_only=True, slots=True)
class Workspace:
    root: Path
    is_git: bool


def find_workspace(start: Path | None = None) -> Workspace:
    """The git work tree containing `start` (default: the current folder), else `start`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return Workspace(root=folder, is_git=True)
    return Workspace(root=here, is_git=False)


def reject_custom_location(root: Path) -> None:
    """Refuse a `[tool.qeguard] policy` setting instead of silently ignoring it.

    Only an error is derived from the working tree's pyproject.toml, never a location.
    """
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return  # pyproject's own problems are not the guard's to report here
    tool = data.get("tool", {})
    table = tool.get("qeguard") if isinstance(tool, dict) else None
    if isinstance(table, dict) and "policy" in table:
        raise ConfigError(
            "a custom policy location is not supported: policy and trust always live in "
            f"{QEGUARD_DIR}/",
            where="pyproject.toml: tool.qeguard.policy",
            hint=f"move the policy to {POLICY_PATH} and delete the setting",
        )
