"""What every vulnerability service answers: advisories by (name, version)."""

from __future__ import annotations

from dataclasses import dataclass

from qeguard.deps.model import Advisory

Key = tuple[str, str]  # (canonical name, version)
SERVICES = ("osv", "pypi")


class ServiceUnavailable(Exception):
    """The online service failed after every retry."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LookupResult:
    advisories: dict[Key, list[Advisory]]
    source: str  # "offline" | "osv" | "pypi"
    fallback_reason: str | None = None
