"""Vulnerability services behind pip-audit's `VulnerabilityService` interface.

The offline database is one more `VulnerabilityService`, so the offline and online paths
return the same `VulnerabilityResult` values and go through the same conversion into
`Advisory`: the findings cannot drift apart. pip-audit has no public API; the names used
here are pinned by `pip-audit>=2.10.1,<2.11` and checked by tests/test_deps_service.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import requests
from packaging.version import InvalidVersion, Version
from pip_audit._service.interface import (
    Dependency as PaDependency,
)
from pip_audit._service.interface import (
    ResolvedDependency,
    ServiceError,
    VulnerabilityID,
    VulnerabilityResult,
    VulnerabilityService,
)

from guard.deps.database import OsvDatabase
from guard.deps.interface import Advisory, Dependency
from guard.deps.osv import Record, merge_aliases
from guard.report.model import Severity

Key = tuple[str, str]  # (canonical name, version)
SERVICES = ("osv", "pypi")


class OfflineService(VulnerabilityService):  # type: ignore[misc]
    """pip-audit's service interface over the local OSV database."""

    def __init__(self, db: OsvDatabase):
        self.db = db

    def records(self, name: str, version: str) -> list[Record]:
        return [r for r in self.db.records_for(name) if r.affects(name, version)]

    def query(self, spec: PaDependency) -> tuple[PaDependency, list[VulnerabilityResult]]:
        if spec.is_skipped():
            return spec, []
        name = spec.canonical_name
        results = []
        for r in self.records(name, str(spec.version)):
            results.append(
                VulnerabilityResult(
                    id=VulnerabilityID(r.id),
                    description=r.summary or "N/A",
                    fix_versions=list(r.fixed_for(name)),
                    aliases={VulnerabilityID(a) for a in r.aliases},
                    published=_published(r.published),
                )
            )
        return spec, results


def _published(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class ServiceUnavailable(Exception):
    """The online service failed after every retry."""


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
        severity, vector = Severity.UNKNOWN, None
        if db is not None:
            rated = [r for i in sorted(ids) for r in db.records_by_id(i)]
            known = [r for r in rated if r.severity is not Severity.UNKNOWN]
            if known:
                best = max(known, key=lambda r: r.severity.rank)
                severity, vector = best.severity, best.cvss
        out.append(
            Advisory(
                id=str(res.id),
                aliases=frozenset(ids - {str(res.id)}),
                summary=res.description if res.description != "N/A" else "",
                fix_versions=tuple(str(v) for v in res.fix_versions),
                severity=severity,
                cvss=vector,
                published=res.published.isoformat() if res.published else None,
            )
        )
    return merge_aliases(out)


@dataclass(frozen=True, kw_only=True, slots=True)
class LookupResult:
    advisories: dict[Key, list[Advisory]]
    source: str  # "offline" | "osv" | "pypi"
    fallback_reason: str | None = None


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
        service = RetryingService(online, attempts=attempts, sleep=sleep)
        try:
            return LookupResult(advisories=_query(service, keys, db), source=online_name)
        except ServiceUnavailable as exc:
            if db is None:
                raise
            return LookupResult(
                advisories=_query(OfflineService(db), keys, db),
                source="offline",
                fallback_reason=f"{online_name} service failed ({exc})",
            )
    if db is None:
        return LookupResult(advisories={}, source="offline")
    return LookupResult(advisories=_query(OfflineService(db), keys, db), source="offline")


def _query(
    service: VulnerabilityService | RetryingService, keys: Sequence[Key], db: OsvDatabase | None
) -> dict[Key, list[Advisory]]:
    out: dict[Key, list[Advisory]] = {}
    for name, version in keys:
        spec = _pa_dependency(name, version)
        if spec is None:
            # Not PEP 440: only the offline database can match it, by exact string.
            if db is not None and isinstance(service, OfflineService):
                out[(name, version)] = merge_aliases(
                    r.advisory(name) for r in service.records(name, version)
                )
            continue
        _, results = service.query(spec)
        out[(name, version)] = to_advisories(results, db)
    return out
