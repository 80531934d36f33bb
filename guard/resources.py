"""Data files shipped inside the package, read through `importlib.resources` only.

The top-level `policies/` and `hooks/` folders of the source tree are the editable
sources; pyproject.toml installs them as the packages `qeguard.policies` and
`qeguard.hooks`. There is no fallback that reads the source tree: what runs is what was
installed.
"""

from __future__ import annotations

from typing import Literal

Folder = Literal["policies", "hooks", "data"]


def read(folder: Folder, name: str) -> bytes:
    """The bytes of `name` in `qeguard.<folder>`."""
    from importlib import resources  # only when a preset is read: not on the hook's path

    return resources.files(f"qeguard.{folder}").joinpath(name).read_bytes()
