"""The offline service: advisories from the local OSV database."""

from __future__ import annotations

from collections.abc import Sequence

from qeguard.deps.database import OsvDatabase
from qeguard.deps.model import Advisory
from qeguard.deps.osv import Record, merge_aliases
from qeguard.deps.services.interface import Key


def affecting(db: OsvDatabase, name: str, version: str) -> list[Record]:
    """The database's records that affect `name` at `version` (withdrawn ones excluded)."""
    return [r for r in db.records_for(name) if r.affects(name, version)]


def offline_advisories(db: OsvDatabase, keys: Sequence[Key]) -> dict[Key, list[Advisory]]:
    db.prefetch(name for name, _ in keys)
    return {
        (name, version): merge_aliases(r.advisory(name) for r in affecting(db, name, version))
        for name, version in keys
    }
