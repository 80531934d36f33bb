"""OSV records and the exact rules for whether one affects a package version.

Follows https://ossf.github.io/osv-schema/: a version is affected when it is listed in
`versions` or falls in any ECOSYSTEM/SEMVER range. Range events may come in any order; they
are sorted by PEP 440 (`packaging`) with "0" lowest. GIT ranges cannot be evaluated
without the repository and are covered by the `versions` list OSV fills in from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from qeguard.deps.model import Advisory
from qeguard.report import Severity

_ZERO = Version("0")
NORMALIZED_KEY = "x-qeguard-normalized"
SEVERITY_KEY = "x-qeguard-severity"  # [severity, CVSS vector or null], set by the index
_EVENT_ORDER = {"introduced": 0, "fixed": 1, "last_affected": 2, "limit": 3}


@dataclass(frozen=True, kw_only=True, slots=True)
class Range:
    # (version, kind) sorted; version None is the "0" sentinel for "introduced".
    events: tuple[tuple[Version, str], ...]
    limits: tuple[Version | None, ...] = ()  # None is the "*" limit (no bound)

    def contains(self, v: Version) -> bool:
        affected = False
        for at, kind in self.events:
            if kind == "introduced":
                if v >= at:
                    affected = True
            elif kind == "fixed":
                if v >= at:
                    affected = False
            elif kind == "last_affected" and v > at:
                affected = False
        if affected and self.limits:
            return any(limit is None or v < limit for limit in self.limits)
        return affected

    @property
    def fixed(self) -> tuple[Version, ...]:
        return tuple(at for at, kind in self.events if kind == "fixed")


@dataclass(frozen=True, kw_only=True, slots=True)
class Affected:
    name: str  # PEP 503 normalized
    versions: frozenset[str]  # raw strings and their PEP 440 normal forms
    ranges: tuple[Range, ...]

    def contains(self, version: str) -> bool:
        if version in self.versions:
            return True
        v = _version(version)
        if v is None:
            return False
        if _normal_form(version) in self.versions:
            return True
        return any(r.contains(v) for r in self.ranges)

    @property
    def fixed(self) -> tuple[Version, ...]:
        return tuple(sorted({f for r in self.ranges for f in r.fixed}))

    def known_versions(self) -> set[Version]:
        out = {v for v in (_version(s) for s in self.versions) if v is not None}
        out.update(at for r in self.ranges for at, _ in r.events if at != _ZERO)
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    id: str
    aliases: frozenset[str]
    summary: str
    published: str | None
    withdrawn: bool
    severity: Severity
    cvss: str | None
    affected: tuple[Affected, ...]

    def affects(self, name: str, version: str) -> bool:
        if self.withdrawn:
            return False
        return any(a.name == name and a.contains(version) for a in self.affected)

    def fixed_for(self, name: str) -> tuple[Version, ...]:
        return tuple(sorted({f for a in self.affected if a.name == name for f in a.fixed}))

    def package_names(self) -> set[str]:
        return {a.name for a in self.affected}

    def advisory(self, name: str) -> Advisory:
        return Advisory(
            id=self.id,
            aliases=self.aliases,
            summary=self.summary,
            fix_versions=tuple(str(v) for v in self.fixed_for(name)),
            severity=self.severity,
            cvss=self.cvss,
            published=self.published,
        )


@lru_cache(maxsize=8192)
def _version(text: str) -> Version | None:
    # Cached: matching asks for the same few versions (the pin, fix versions, range
    # events) once per record, and parsing dominates a scan's time otherwise.
    try:
        return Version(text)
    except InvalidVersion:
        return None


@lru_cache(maxsize=8192)
def _normal_form(text: str) -> str | None:
    v = _version(text)
    return None if v is None else str(v)


def parse_record(data: Mapping[str, Any], *, ecosystem: str = "PyPI") -> Record:
    """An OSV record (one JSON object) -> Record, keeping only `ecosystem` packages."""
    affected: list[Affected] = []
    for entry in data.get("affected") or ():
        pkg = entry.get("package") or {}
        if pkg.get("ecosystem") != ecosystem or not pkg.get("name"):
            continue
        versions: set[str] = {str(raw) for raw in entry.get("versions") or ()}
        if isinstance(entry.get(NORMALIZED_KEY), list):
            # Precomputed by the database index: parsing every listed version on each scan
            # is most of a warm scan's time.
            versions.update(entry[NORMALIZED_KEY])
        else:
            versions.update(normalized_versions(versions))
        ranges = tuple(r for r in (_range(x) for x in entry.get("ranges") or ()) if r)
        affected.append(
            Affected(
                name=canonicalize_name(pkg["name"]), versions=frozenset(versions), ranges=ranges
            )
        )
    severity, vector = _stored_severity(data.get(SEVERITY_KEY)) or record_severity(data)
    summary = data.get("summary") or data.get("details") or ""
    return Record(
        id=str(data["id"]),
        aliases=frozenset(str(a) for a in data.get("aliases") or ()) - {str(data["id"])},
        summary=_one_line(str(summary)),
        published=data.get("published"),
        withdrawn=bool(data.get("withdrawn")),
        severity=severity,
        cvss=vector,
        affected=tuple(affected),
    )


def index_form(data: Mapping[str, Any], *, ecosystem: str = "PyPI") -> dict[str, Any]:
    """The parts of an OSV record `parse_record` reads, with the costly parts precomputed
    (PEP 440 normal forms of listed versions, the severity rating, the one-line summary).

    `parse_record(index_form(d))` equals `parse_record(d)`; the index stores this form, so
    a warm scan decodes and parses less and never imports cvss.
    """
    severity, vector = record_severity(data)
    affected = []
    for entry in data.get("affected") or ():
        pkg = entry.get("package") or {}
        if pkg.get("ecosystem") != ecosystem or not pkg.get("name"):
            continue
        versions = [str(v) for v in entry.get("versions") or ()]
        slim: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": pkg["name"]}}
        if versions:
            slim["versions"] = versions
            slim[NORMALIZED_KEY] = normalized_versions(versions)
        if entry.get("ranges"):
            slim["ranges"] = entry["ranges"]
        affected.append(slim)
    summary = data.get("summary") or data.get("details") or ""
    return {
        "id": data["id"],
        "aliases": list(data.get("aliases") or ()),
        "summary": _one_line(str(summary)),
        "published": data.get("published"),
        "withdrawn": data.get("withdrawn"),
        SEVERITY_KEY: [severity.value, vector],
        "affected": affected,
    }


def _one_line(text: str, limit: int = 500) -> str:
    # rstrip: a cut at a space would leave one, and the result must be a fixed point
    # (the index stores it and parse_record applies this again).
    return " ".join(text.split())[:limit].rstrip()


def _stored_severity(value: Any) -> tuple[Severity, str | None] | None:
    """The index's precomputed rating, if well formed (saves importing and running cvss)."""
    if not (isinstance(value, list) and len(value) == 2):
        return None
    try:
        severity = Severity(value[0])
    except ValueError:
        return None
    return severity, value[1] if isinstance(value[1], str) else None


def normalized_versions(versions: Iterable[str]) -> list[str]:
    """PEP 440 normal forms of `versions` that differ from how they are written."""
    out = []
    for raw in versions:
        v = _version(raw)
        if v is not None and str(v) != raw:
            out.append(str(v))
    return out


def _range(data: Mapping[str, Any]) -> Range | None:
    if data.get("type") not in ("ECOSYSTEM", "SEMVER"):
        return None
    events: list[tuple[Version, str]] = []
    limits: list[Version | None] = []
    for event in data.get("events") or ():
        for kind, raw in event.items():
            if kind not in _EVENT_ORDER:
                continue
            if kind == "limit":
                limits.append(None if raw == "*" else _version(str(raw)))
                continue
            v = _ZERO if (kind == "introduced" and str(raw) == "0") else _version(str(raw))
            if v is None:
                continue  # not PEP 440: cannot be ordered, so it cannot bound anything
            events.append((v, kind))
    if not events:
        return None
    events.sort(key=lambda e: (e[0], _EVENT_ORDER[e[1]]))
    return Range(events=tuple(events), limits=tuple(limits))


def record_severity(data: Mapping[str, Any]) -> tuple[Severity, str | None]:
    """From the CVSS vector when present (highest of several), else database_specific."""
    best: tuple[Severity, str | None] | None = None
    entries: list[Any] = list(data.get("severity") or ())
    for a in data.get("affected") or ():
        entries.extend(a.get("severity") or ())
    for entry in entries:
        sev = cvss_severity(str(entry.get("type", "")), str(entry.get("score", "")))
        if sev is not None and (best is None or sev.rank > best[0].rank):
            best = (sev, str(entry.get("score")))
    if best is not None:
        return best
    for table in (
        data.get("database_specific"),
        *(a.get("database_specific") for a in data.get("affected") or ()),
    ):
        if isinstance(table, Mapping) and isinstance(table.get("severity"), str):
            sev = _named_severity(table["severity"])
            if sev is not None:
                return sev, None
    return Severity.UNKNOWN, None


def _named_severity(text: str) -> Severity | None:
    names = {
        "critical": Severity.CRITICAL,
        "high": Severity.HIGH,
        "moderate": Severity.MEDIUM,
        "medium": Severity.MEDIUM,
        "low": Severity.LOW,
        "none": Severity.INFO,
    }
    return names.get(text.strip().lower())


def cvss_severity(kind: str, vector: str) -> Severity | None:
    from cvss import CVSS2, CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    try:
        if kind == "CVSS_V3" or vector.startswith("CVSS:3"):
            return _named_severity(CVSS3(vector).severities()[0])
        if kind == "CVSS_V4" or vector.startswith("CVSS:4"):
            return _named_severity(CVSS4(vector).severity)
        if kind == "CVSS_V2":
            score = float(CVSS2(vector).scores()[0])
            return Severity.HIGH if score >= 7 else Severity.MEDIUM if score >= 4 else Severity.LOW
    except (CVSSError, ValueError, KeyError, IndexError):
        return None
    return None


def merge_aliases(advisories: Iterable[Advisory]) -> list[Advisory]:
    """Join advisories that share any id or alias into one, keeping every fix version,
    the highest severity and the preferred id (PYSEC, then GHSA, then CVE, then others)."""
    groups: list[list[Advisory]] = []
    for adv in advisories:
        hits = [g for g in groups if any(adv.ids & other.ids for other in g)]
        merged = [adv]
        for g in hits:
            merged.extend(g)
            groups.remove(g)
        groups.append(merged)
    out: list[Advisory] = []
    for g in groups:
        ids: set[str] = set()
        fixes: set[str] = set()
        for a in g:
            ids |= a.ids
            fixes.update(a.fix_versions)
        primary = min(ids, key=_id_rank)
        top = max(g, key=lambda a: (a.severity is not Severity.UNKNOWN, a.severity.rank))
        summary = next((a.summary for a in g if a.id == primary and a.summary), top.summary)
        out.append(
            Advisory(
                id=primary,
                aliases=frozenset(ids - {primary}),
                summary=summary,
                fix_versions=tuple(sorted(fixes, key=_version_key)),
                severity=top.severity,
                cvss=top.cvss,
                published=min((a.published for a in g if a.published), default=None),
            )
        )
    return sorted(out, key=lambda a: a.id)


def _id_rank(i: str) -> tuple[int, str]:
    order = ("PYSEC-", "GHSA-", "CVE-")
    return next((n for n, p in enumerate(order) if i.startswith(p)), len(order)), i


def _version_key(text: str) -> tuple[int, Version | str]:
    v = _version(text)
    return (0, v) if v is not None else (1, text)


def lowest_clearing(current: str, records: Sequence[Record], name: str) -> str | None:
    """The lowest known version above `current` that none of `records` affects."""
    cur = _version(current)
    candidates: set[Version] = set()
    for r in records:
        if r.withdrawn:
            continue
        candidates.update(r.fixed_for(name))
    for cand in sorted(c for c in candidates if cur is None or c > cur):
        if not any(r.affects(name, str(cand)) for r in records):
            return str(cand)
    return None
