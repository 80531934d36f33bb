"""Advisories for a set of pins: from the offline database, or online with a fallback.

This module imports nothing heavy. Offline lookups read the OSV records directly; only
`--online` imports pip-audit (whose import alone runs `pip --version` in a subprocess),
through `guard.deps.online`. Both paths end in the same `Advisory` values: offline
records become advisories with `Record.advisory`, online results with
`online.to_advisories`, and tests/test_deps_service.py checks the two agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from qeguard.deps.database import OsvDatabase
from qeguard.deps.model import Dependency
from qeguard.deps.services.interface import LookupResult, ServiceUnavailable
from qeguard.deps.services.offline import offline_advisories

if TYPE_CHECKING:
    from pip_audit._service.interface import VulnerabilityService


def lookup(
    deps: Sequence[Dependency],
    *,
    db: OsvDatabase | None,
    online: VulnerabilityService | None = None,
    online_name: str = "osv",
    attempts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
) -> LookupResult:
    """Advisories for every pinned dependency: online when asked (falling back to the
    offline database after retries), else offline."""
    keys = sorted({(d.canonical_name, d.version) for d in deps if d.version is not None})
    if online is not None:
        from qeguard.deps.services.pip_audit import RetryingService, query_online

        service = RetryingService(online, attempts=attempts, sleep=sleep)
        try:
            advisories = query_online(service, keys, db)
        except ServiceUnavailable as exc:
            if db is None:
                raise
            return LookupResult(
                advisories=offline_advisories(db, keys),
                source="offline",
                fallback_reason=f"{online_name} service failed ({exc})",
            )
        return LookupResult(advisories=advisories, source=online_name)
    if db is None:
        return LookupResult(advisories={}, source="offline")
    return LookupResult(advisories=offline_advisories(db, keys), source="offline")
