"""Online vulnerability services through pip-audit's `VulnerabilityService` interface.

Imported only for `--online` (see `guard.deps.service`). pip-audit has no public API; the
names used here are pinned by `pip-audit>=2.10.1,<2.11` and checked by
tests/test_deps_service.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import requests
from packaging.version import InvalidVersion, Version
from pip_audit._service.interface import (
    Dependency as PaDependency,
)
from pip_audit._service.interface import (
    ResolvedDependency,
    ServiceError,
    VulnerabilityResult,
    VulnerabilityService,
)
from qeguard.deps.database import OsvDatabase
from qeguard.deps.model import Advisory, Rating
from qeguard.deps.osv import merge_aliases
from qeguard.deps.services.interface import Key, ServiceUnavailable
from qeguard.deps.services.offline import offline_advisories


@dataclass
class RetryingService:
    """Retries a failing online service with exponential backoff (0.5 s, 1 s, 2 s, ...)."""

    inner: VulnerabilityService
    attempts: int = 3
    base_delay: float = 0.5
    sleep: Callable[[float], None] = time.sleep

    def query(self, spec: PaDependency) -> tuple[PaDependency, list[VulnerabilityResult]]:
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                result: tuple[PaDependency, list[VulnerabilityResult]] = self.inner.query(spec)
                return result
            except (ServiceError, requests.RequestException, ValueError) as exc:
                last = exc
                if attempt + 1 < self.attempts:
                    self.sleep(self.base_delay * (2**attempt))
        raise ServiceUnavailable(f"{type(last).__name__}: {last}") from last


def online_service(name: str, *, timeout: int = 15, url: str | None = None) -> VulnerabilityService:
    from pip_audit._service import OsvService, PyPIService

    if name == "osv":
        return OsvService(timeout=timeout, **({"osv_url": url} if url else {}))
    return PyPIService(timeout=timeout)


def _pa_dependency(name: str, version: str) -> PaDependency | None:
    try:
        return ResolvedDependency(name=name, version=Version(version))
    except InvalidVersion:
        return None


def to_advisories(results: Iterable[VulnerabilityResult], db: OsvDatabase | None) -> list[Advisory]:
    """pip-audit results -> merged advisories, rated from the database's CVSS data."""
    out: list[Advisory] = []
    for res in results:
        ids = {str(res.id), *(str(a) for a in res.aliases)}
        rating = Rating()
        description = ""
        if db is not None:
            rated = [r for i in sorted(ids) for r in db.records_by_id(i)]
            if rated:
                best = max(rated, key=lambda r: r.rating.sort_key)
                rating, description = best.rating, best.description
        summary = res.description if res.description != "N/A" else ""
        out.append(
            Advisory(
                id=str(res.id),
                aliases=frozenset(ids - {str(res.id)}),
                summary=" ".join(summary.split())[:500],
                description=description or summary,
                fix_versions=tuple(str(v) for v in res.fix_versions),
                rating=rating,
                published=res.published.isoformat() if res.published else None,
            )
        )
    return merge_aliases(out)


def query_online(
    service: VulnerabilityService | RetryingService, keys: Sequence[Key], db: OsvDatabase | None
) -> dict[Key, list[Advisory]]:
    """Ask `service` about each pin; ratings and non-PEP 440 versions come from `db`."""
    out: dict[Key, list[Advisory]] = {}
    for name, version in keys:
        spec = _pa_dependency(name, version)
        if spec is None:
            # Not PEP 440: the service cannot take it; the database matches it by string.
            if db is not None:
                out.update(offline_advisories(db, [(name, version)]))
            continue
        _, results = service.query(spec)
        out[(name, version)] = to_advisories(results, db)
    return out
