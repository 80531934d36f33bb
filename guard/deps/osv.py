"""OSV records and the exact rules for whether one affects a package version.

Follows https://ossf.github.io/osv-schema/: a version is affected when it is listed in
`versions` or falls in any ECOSYSTEM/SEMVER range, ordered by PEP 440 (`packaging`) with
"0" lowest. GIT ranges cannot be evaluated without the repository and are covered by the
`versions` list OSV fills in from them.

A range whose boundary is not a PEP 440 version cannot be ordered, so it is never guessed:
dropping the bad boundary would widen the range (a dropped `fixed` flags every later
release). The record's `versions` list answers instead; with no list either, the answer is
`Match.UNKNOWN` and the scan reports the record as one it could not evaluate.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from qeguard.deps.model import Advisory, Rating, SeveritySource
from qeguard.report import Severity

NORMALIZED_KEY = "x-qeguard-normalized"
# [severity, CVSS vector or null, base score or null, severity source], set by the index.
SEVERITY_KEY = "x-qeguard-severity"
_BOUNDARIES = ("introduced", "fixed", "last_affected")


class Match(enum.Enum):
    """What a record says about one version."""

    AFFECTED = "affected"
    UNAFFECTED = "unaffected"
    UNKNOWN = "unknown"  # the record's ranges cannot be evaluated and it lists no versions


@dataclass(frozen=True, kw_only=True, slots=True)
class Interval:
    """Affected versions from `low` (None: from the very first) up to `high`."""

    low: Version | None
    high: Version | None  # None: no upper bound
    inclusive: bool = False  # True for a `last_affected` bound

    def contains(self, v: Version) -> bool:
        if self.low is not None and v < self.low:
            return False
        if self.high is None:
            return True
        return v <= self.high if self.inclusive else v < self.high


@dataclass(frozen=True, kw_only=True, slots=True)
class Range:
    intervals: tuple[Interval, ...] = ()
    limits: tuple[Version | None, ...] = ()  # None is the "*" limit (no bound)
    fixed: tuple[Version, ...] = ()
    # Why the range cannot be evaluated (a boundary that is not PEP 440), else None.
    problem: str | None = None

    def contains(self, v: Version) -> bool:
        if self.problem is not None:
            return False
        if self.limits and not any(limit is None or v < limit for limit in self.limits):
            return False
        return any(i.contains(v) for i in self.intervals)

    def bounds(self) -> set[Version]:
        out = {i.low for i in self.intervals if i.low is not None}
        out.update(i.high for i in self.intervals if i.high is not None)
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Affected:
    name: str  # PEP 503 normalized
    versions: frozenset[str]  # raw strings and their PEP 440 normal forms
    ranges: tuple[Range, ...]

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(r.problem for r in self.ranges if r.problem is not None)

    def match(self, version: str) -> Match:
        if version in self.versions or _normal_form(version) in self.versions:
            return Match.AFFECTED
        v = _version(version)
        if v is None:
            # A version that is not PEP 440 can only be matched by the list.
            return Match.UNKNOWN if self.ranges and not self.versions else Match.UNAFFECTED
        if any(r.contains(v) for r in self.ranges):
            return Match.AFFECTED
        if self.problems and not self.versions:
            return Match.UNKNOWN
        return Match.UNAFFECTED

    def contains(self, version: str) -> bool:
        return self.match(version) is Match.AFFECTED

    @property
    def fixed(self) -> tuple[Version, ...]:
        return tuple(sorted({f for r in self.ranges for f in r.fixed}))

    def known_versions(self) -> set[Version]:
        out = {v for v in (_version(s) for s in self.versions) if v is not None}
        for r in self.ranges:
            out.update(r.bounds())
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    id: str
    aliases: frozenset[str]
    summary: str
    description: str
    published: str | None
    withdrawn: bool
    rating: Rating
    affected: tuple[Affected, ...]

    @property
    def severity(self) -> Severity:
        return self.rating.severity

    @property
    def cvss(self) -> str | None:
        return self.rating.vector

    def match(self, name: str, version: str) -> Match:
        """AFFECTED if any entry for `name` says so, else UNKNOWN if any cannot tell."""
        if self.withdrawn:
            return Match.UNAFFECTED
        result = Match.UNAFFECTED
        for a in self.affected:
            if a.name != name:
                continue
            m = a.match(version)
            if m is Match.AFFECTED:
                return m
            if m is Match.UNKNOWN:
                result = m
        return result

    def affects(self, name: str, version: str) -> bool:
        return self.match(name, version) is Match.AFFECTED

    def problems(self, name: str) -> tuple[str, ...]:
        return tuple(p for a in self.affected if a.name == name for p in a.problems)

    def fixed_for(self, name: str) -> tuple[Version, ...]:
        return tuple(sorted({f for a in self.affected if a.name == name for f in a.fixed}))

    def package_names(self) -> set[str]:
        return {a.name for a in self.affected}

    def advisory(self, name: str) -> Advisory:
        return Advisory(
            id=self.id,
            aliases=self.aliases,
            summary=self.summary,
            description=self.description,
            fix_versions=tuple(str(v) for v in self.fixed_for(name)),
            rating=self.rating,
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
    rating = _stored_rating(data.get(SEVERITY_KEY)) or record_rating(data)
    return Record(
        id=str(data["id"]),
        aliases=frozenset(str(a) for a in data.get("aliases") or ()) - {str(data["id"])},
        summary=_one_line(str(data.get("summary") or data.get("details") or "")),
        description=str(data.get("details") or data.get("summary") or "").strip(),
        published=data.get("published"),
        withdrawn=bool(data.get("withdrawn")),
        rating=rating,
        affected=tuple(affected),
    )


def index_extras(data: Mapping[str, Any], forms: NormalForms | None = None) -> dict[str, Any]:
    """What the index stores beside a record so that a warm scan need not compute it: the
    severity rating (so scans never import cvss) and, for each `affected` entry in order,
    the PEP 440 normal forms of its listed versions that differ from how they are written.

    `parse_record(with_extras(d, index_extras(d)))` equals `parse_record(d)`. `forms`
    caches normal forms across the records of one index build (advisories of one package
    list the same releases again and again)."""
    rating = record_rating(data)
    normalized = []
    for entry in data.get("affected") or ():
        versions = entry.get("versions") or ()
        normalized.append(normalized_versions(versions, forms) if versions else [])
    return {
        SEVERITY_KEY: [rating.severity.value, rating.vector, rating.score, rating.source.value],
        NORMALIZED_KEY: normalized,
    }


def with_extras(data: dict[str, Any], extras: Any) -> dict[str, Any]:
    """`data` (a record as the archive holds it) with the index's `extras` put where
    `parse_record` reads them; extras that do not fit (a damaged cache file) are left out,
    so the record is parsed from its own fields, and any such keys the record itself
    carries are replaced, never trusted."""
    affected = data.get("affected")
    entries = affected if isinstance(affected, list) else []
    try:
        severity = extras[SEVERITY_KEY]
        normalized = extras[NORMALIZED_KEY]
        fits = isinstance(normalized, list) and len(normalized) == len(entries)
    except (KeyError, TypeError):
        severity, normalized, fits = None, [], False
    data[SEVERITY_KEY] = severity
    for i, entry in enumerate(entries):
        if isinstance(entry, dict):
            entry.pop(NORMALIZED_KEY, None)
            if fits and isinstance(normalized[i], list):
                entry[NORMALIZED_KEY] = normalized[i]
    return data


def _one_line(text: str, limit: int = 500) -> str:
    # rstrip: a cut at a space would leave one, and the result must be a fixed point
    # (the index stores it and parse_record applies this again).
    return " ".join(text.split())[:limit].rstrip()


def _stored_rating(value: Any) -> Rating | None:
    """The index's precomputed rating, if well formed (saves importing and running cvss)."""
    if not (isinstance(value, list) and len(value) == 4):
        return None
    try:
        severity, source = Severity(value[0]), SeveritySource(value[3])
    except ValueError:
        return None
    vector = value[1] if isinstance(value[1], str) else None
    score = float(value[2]) if isinstance(value[2], int | float) else None
    return Rating(severity=severity, vector=vector, score=score, source=source)


# A version already in PEP 440 normal form (no leading zeros, canonical spellings): most
# listed versions are, and recognising them is much cheaper than parsing (index builds
# read a million of them).
_NORMAL = re.compile(
    r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*"
    r"(?:(?:a|b|rc)(?:0|[1-9][0-9]*))?(?:\.post(?:0|[1-9][0-9]*))?(?:\.dev(?:0|[1-9][0-9]*))?"
)


class NormalForms:
    """Normal forms already worked out during one index build: `normal` holds versions
    written in normal form, `odd` maps the others to their normal form (None when not
    PEP 440). A set difference then finds in C the few versions of a list not yet seen."""

    __slots__ = ("normal", "odd")

    def __init__(self) -> None:
        self.normal: set[str] = set()
        self.odd: dict[str, str | None] = {}


def normalized_versions(versions: Iterable[Any], forms: NormalForms | None = None) -> list[str]:
    """PEP 440 normal forms of `versions` that differ from how they are written."""
    forms = NormalForms() if forms is None else forms
    listed = set(versions)
    if not set(map(type, listed)) <= {str}:
        listed = {str(v) for v in listed}  # parse_record reads every item as a string
    out = []
    for raw in listed - forms.normal:
        if raw in forms.odd:
            normal = forms.odd[raw]
        elif _NORMAL.fullmatch(raw):
            forms.normal.add(raw)
            continue
        else:
            v = _version(raw)
            normal = None if v is None else str(v)
            if normal == raw:
                forms.normal.add(raw)
                continue
            forms.odd[raw] = normal
        if normal is not None:
            out.append(normal)
    return out


def _range(data: Mapping[str, Any]) -> Range | None:
    """One ECOSYSTEM/SEMVER range as intervals, built the way OSV's reference
    implementation expands ranges into versions (osv.dev, `osv/impact.py`,
    `enumerate_versions`): the events are sorted by version with a *stable* sort, so
    events at the same version keep their order in the record, and then walked in pairs:
    an `introduced` opens an interval when none is open, a `fixed` or `last_affected`
    closes the open one. So `fixed 3.1.1` followed by `introduced 3.1.1` (pyspark's
    PYSEC-2022-236) closes one interval and opens the next at 3.1.1, which stays affected,
    as the record's own `versions` list says; reading `introduced` first would cancel it."""
    if data.get("type") not in ("ECOSYSTEM", "SEMVER"):
        return None
    events: list[tuple[Version | None, str]] = []
    limits: list[Version | None] = []
    for event in data.get("events") or ():
        if not isinstance(event, Mapping):
            continue
        for kind, raw in event.items():
            if kind == "limit":
                limit = None if raw == "*" else _version(str(raw))
                if limit is None and raw != "*":
                    return Range(problem=f"limit {raw!r} is not a PEP 440 version")
                limits.append(limit)
            elif kind in _BOUNDARIES:
                if kind == "introduced" and str(raw) == "0":
                    events.append((None, kind))
                    continue
                v = _version(str(raw))
                if v is None:
                    return Range(problem=f"{kind} {raw!r} is not a PEP 440 version")
                events.append((v, kind))
    if not events:
        return None
    events.sort(key=lambda e: (0,) if e[0] is None else (1, e[0]))  # stable
    intervals: list[Interval] = []
    opened: tuple[Version | None] | None = None
    for at, kind in events:
        if kind == "introduced":
            if opened is None:
                opened = (at,)
        elif opened is not None and at is not None:
            intervals.append(Interval(low=opened[0], high=at, inclusive=kind == "last_affected"))
            opened = None
    if opened is not None:
        intervals.append(Interval(low=opened[0], high=None))
    fixed = tuple(at for at, kind in events if kind == "fixed" and at is not None)
    return Range(intervals=tuple(intervals), limits=tuple(limits), fixed=fixed)


def record_rating(data: Mapping[str, Any]) -> Rating:
    """The record's severity from its data: a CVSS v4 vector (the newer standard) if any,
    else a CVSS v3 vector (the highest scored of several), else GitHub's
    `database_specific.severity`; `unknown` only when the record has none of them."""
    entries: list[Any] = list(data.get("severity") or ())
    for a in data.get("affected") or ():
        if isinstance(a, Mapping):
            entries.extend(a.get("severity") or ())
    for kind in ("CVSS_V4", "CVSS_V3"):
        scored = [
            r
            for r in (
                cvss_rating(kind, str(e.get("score", "")))
                for e in entries
                if isinstance(e, Mapping) and e.get("type") == kind
            )
            if r is not None
        ]
        if scored:
            return max(scored, key=lambda r: r.score or 0.0)
    for table in (
        data.get("database_specific"),
        *(a.get("database_specific") for a in data.get("affected") or () if isinstance(a, dict)),
    ):
        if isinstance(table, Mapping) and isinstance(table.get("severity"), str):
            sev = _named_severity(table["severity"])
            if sev is not None:
                return Rating(severity=sev, source=SeveritySource.GHSA)
    return Rating()


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


@lru_cache(maxsize=4096)
def cvss_rating(kind: str, vector: str) -> Rating | None:
    """A CVSS v3.x or v4.0 vector scored with the `cvss` library, or None if invalid.
    Cached: an index build rates every record, and records share a few hundred vectors."""
    from cvss import CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    try:
        if kind == "CVSS_V3" and vector.startswith("CVSS:3"):
            c3 = CVSS3(vector)
            sev = _named_severity(c3.severities()[0])
            score = float(c3.base_score)
            source = SeveritySource.CVSS_V3
        elif kind == "CVSS_V4" and vector.startswith("CVSS:4"):
            c4 = CVSS4(vector)
            sev = _named_severity(c4.severity)
            score = float(c4.base_score)
            source = SeveritySource.CVSS_V4
        else:
            return None
    except (CVSSError, ValueError, KeyError, IndexError, TypeError):
        return None
    if sev is None:
        return None
    return Rating(severity=sev, vector=vector, score=score, source=source)


def validate_record(data: Any) -> str | None:
    """Why `data` is not an OSV record this scanner can use, or None when it is.

    Checks the shape the OSV schema requires of what matching reads (id, modified,
    affected packages, ranges and events as strings), so that one malformed record is
    skipped with a warning instead of failing the whole database or a scan. JSON objects
    are dicts: `isinstance(x, dict)` is what `json.loads` makes, and much cheaper than an
    ABC check in a loop that runs for every record of an index build."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if not isinstance(data.get("id"), str) or not data["id"]:
        return "no string `id`"
    if not isinstance(data.get("modified"), str):
        return "no string `modified`"
    for key in ("summary", "details", "published", "withdrawn"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            return f"`{key}` is not a string"
    if not _str_list(data.get("aliases", [])):
        return "`aliases` is not a list of strings"
    affected = data.get("affected", [])
    if not isinstance(affected, list):
        return "`affected` is not a list"
    for i, entry in enumerate(affected):
        where = f"affected[{i}]"
        if not isinstance(entry, dict):
            return f"{where} is not an object"
        pkg = entry.get("package")
        if pkg is not None and not (
            isinstance(pkg, dict)
            and isinstance(pkg.get("ecosystem"), str)
            and isinstance(pkg.get("name"), str)
        ):
            return f"{where}.package needs string `ecosystem` and `name`"
        # A list (its items are read as strings); checking a million items costs more
        # than it could catch.
        if not isinstance(entry.get("versions", []), list):
            return f"{where}.versions is not a list"
        ranges = entry.get("ranges", [])
        if not isinstance(ranges, list):
            return f"{where}.ranges is not a list"
        for j, rng in enumerate(ranges):
            if not isinstance(rng, dict) or not isinstance(rng.get("type"), str):
                return f"{where}.ranges[{j}] needs a string `type`"
            events = rng.get("events")
            if not isinstance(events, list):
                return f"{where}.ranges[{j}].events must be a list"
            for event in events:  # loops, not all(): this runs for every record of a build
                if not isinstance(event, dict):
                    return f"{where}.ranges[{j}].events must be objects of strings"
                for value in event.values():
                    if not isinstance(value, str):
                        return f"{where}.ranges[{j}].events must be objects of strings"
    severity = data.get("severity", [])
    if not isinstance(severity, list) or not all(isinstance(s, dict) for s in severity):
        return "`severity` is not a list of objects"
    return None


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def merge_aliases(advisories: Iterable[Advisory]) -> list[Advisory]:
    """Join advisories that share any id or alias into one, keeping every fix version,
    the best-rated data (a scored rating over a named one, then the highest severity)
    and the preferred id (PYSEC, then GHSA, then CVE, then others)."""
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
        top = max(g, key=lambda a: a.rating.sort_key)
        summary = next((a.summary for a in g if a.id == primary and a.summary), top.summary)
        description = next(
            (a.description for a in g if a.id == primary and a.description), top.description
        )
        out.append(
            Advisory(
                id=primary,
                aliases=frozenset(ids - {primary}),
                summary=summary,
                description=description or summary,
                fix_versions=tuple(sorted(fixes, key=_version_key)),
                rating=top.rating,
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
