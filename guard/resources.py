"""Data files shipped with the package: preset policies and native git hooks.

Installed, they are the packages `guard.policies` and `guard.hooks` (pyproject maps the
top-level `policies/` and `hooks/` folders there). Run from a source checkout
(`python -m guard` in the repository), those packages do not exist, so the folders are
read where they stand.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def read(package: str, name: str) -> bytes:
    """The bytes of `name` in `guard.<package>` (policies or hooks)."""
    try:
        return resources.files(f"guard.{package}").joinpath(name).read_bytes()
    except ModuleNotFoundError:
        return (Path(__file__).resolve().parent.parent / package / name).read_bytes()
