"""The guard report: one model that integrity checks and the dependency scan both fill.

Renderers (one module per format beside this one) read a `Report` and never compute
verdicts of their own; everything they show comes from here, so all formats agree.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from qeguard.errors import ConfigError, ExitCode
from qeguard.rules import Identity, RuleId
from qeguard.rules import rule as lookup_rule

REPORT_SCHEMA = "qeguard.report/v1"
OSV_URL = "https://osv.dev/vulnerability/"
ELLIPSIS = "\u2026"

# What an advisory id looks like (PYSEC-2018-28, GHSA-8q59-q68h-6hv4, CVE-2018-18074,
# RUSTSEC-..., PSF-...): only such ids become links, so report data cannot inject a URL.
_ADVISORY_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]{0,120}$")


def advisory_url(advisory_id: str) -> str | None:
    """The osv.dev page of an advisory (OSV serves PYSEC, GHSA and CVE ids alike), or None
    for text that does not look like an advisory id."""
    if not _ADVISORY_ID.match(advisory_id):
        return None
    return OSV_URL + quote(advisory_id, safe="-._:")


def counted(n: int, one: str, many: str | None = None) -> str:
    """`1 file`, `2 files`, `3 files differ`: the count with its noun agreeing."""
    return f"{n} {one}" if n == 1 else f"{n} {many if many is not None else one + 's'}"


def shorten(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters; a cut ends at a word with an ellipsis
    so that a reader sees it was cut."""
    one = " ".join(text.split())
    if len(one) <= limit:
        return one
    cut = one[: max(limit - 1, 1)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + ELLIPSIS


class Severity(enum.Enum):
    """Finding severity. `unknown` (a vulnerability without a score) ranks with `high`:
    a security tool should fail closed on what it cannot rate."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def parse(cls, text: str, *, where: str = "fail_on") -> Severity:
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise ConfigError(
                f"unknown severity {text!r}", where=where, hint=f"use one of: {choices}"
            ) from None


_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.UNKNOWN: 3,
    Severity.CRITICAL: 4,
}

# Display order, most severe first.
SEVERITY_ORDER = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.UNKNOWN,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.INFO,
)


class Verdict(enum.Enum):
    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True, kw_only=True, slots=True)
class Location:
    path: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    @property
    def sort_key(self) -> tuple[str, int]:
        return (self.path, self.line or 0)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Location:
        return cls(path=d["path"], line=d.get("line"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Suppression:
    """Why a finding does not count: an ignore entry, an override, a local relaxation."""

    reason: str
    kind: str = "ignore"  # ignore | override | local
    expires: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One thing the guard found. `fingerprint` is stable across runs for the same issue.

    `location` is the primary place (formats that take one location show it); `also_at`
    holds the other places that declare the same thing (a pin read through two files).
    """

    rule: str
    severity: Severity
    title: str
    message: str
    location: Location | None = None
    also_at: tuple[Location, ...] = ()
    tier: str | None = None
    package: str | None = None
    version: str | None = None
    fix: str | None = None
    suppressed: Suppression | None = None
    # Free-form, JSON-serializable details (aliases, fix versions, signers, ...).
    details: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", self.compute_fingerprint())

    def identity(self) -> tuple[str, ...]:
        """What this finding is about; equal identities are one finding.

        A rule with package identity (a vulnerability, a license) is about the package
        version, wherever it is declared: (rule, canonical package name, version, advisory
        id). Every other rule is about a place: (rule, path, line, tier, package, version,
        id), so six hits of one bandit test in one file are six findings. "id" is
        `details[rule.key]` (`details["entry"]` for QG-INT-PATH). The wording, severity and
        fix are not part of it. `report.schema.json` documents this.
        """
        r = lookup_rule(self.rule)
        ident = str(self.details.get(r.key, ""))
        package = ""
        if self.package:
            # Imported here: packaging costs the integrity hook 10 ms it never needs.
            from packaging.utils import canonicalize_name

            package = canonicalize_name(self.package)
        if r.identity is Identity.PACKAGE and package:
            return (self.rule, package, self.version or "", ident)
        loc = self.location
        return (
            self.rule,
            loc.path if loc else "",
            str(loc.line) if loc and loc.line else "",
            self.tier or "",
            package,
            self.version or "",
            ident,
        )

    def compute_fingerprint(self) -> str:
        data = "\x1f".join(self.identity()).encode("utf-8", "surrogateescape")
        return hashlib.sha256(data).hexdigest()[:32]

    @property
    def locations(self) -> tuple[Location, ...]:
        """Every place the finding applies to, the primary one first."""
        return ((self.location,) if self.location else ()) + self.also_at

    @property
    def advisory_ids(self) -> tuple[str, ...]:
        """The advisories this finding is about (its own id first), for rules that name them."""
        if not lookup_rule(self.rule).advisory:
            return ()
        ids: list[str] = []
        first = self.details.get("id")
        if isinstance(first, str) and first:
            ids.append(first)
        more = self.details.get("ids")
        if isinstance(more, list | tuple):
            ids.extend(str(i) for i in more if str(i) not in ids)
        return tuple(ids)

    @property
    def aliases(self) -> tuple[str, ...]:
        raw = self.details.get("aliases")
        if not isinstance(raw, list | tuple):
            return ()
        return tuple(str(a) for a in raw)

    @property
    def fix_versions(self) -> tuple[str, ...]:
        raw = self.details.get("fix_versions")
        if not isinstance(raw, list | tuple):
            return ()
        return tuple(str(v) for v in raw)

    def suppress(self, suppression: Suppression) -> Finding:
        return replace(self, suppressed=suppression)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "severity": self.severity.value,
            "title": self.title,
            "message": self.message,
            "location": self.location.to_dict() if self.location else None,
            "also_at": [loc.to_dict() for loc in self.also_at],
            "tier": self.tier,
            "package": self.package,
            "version": self.version,
            "fix": self.fix,
            "fingerprint": self.fingerprint,
            "suppressed": (
                {
                    "reason": self.suppressed.reason,
                    "kind": self.suppressed.kind,
                    "expires": self.suppressed.expires,
                }
                if self.suppressed
                else None
            ),
            "details": dict(self.details),
        }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        loc = data.get("location")
        sup = data.get("suppressed")
        return cls(
            rule=data["rule"],
            severity=Severity(data["severity"]),
            title=data["title"],
            message=data["message"],
            location=Location.from_dict(loc) if loc else None,
            also_at=tuple(Location.from_dict(a) for a in data.get("also_at") or ()),
            tier=data.get("tier"),
            package=data.get("package"),
            version=data.get("version"),
            fix=data.get("fix"),
            suppressed=(
                Suppression(
                    reason=sup["reason"], kind=sup.get("kind", "ignore"), expires=sup.get("expires")
                )
                if sup
                else None
            ),
            details=dict(data.get("details") or {}),
            fingerprint=data.get("fingerprint", ""),
        )


class TierVerdict(enum.Enum):
    """A tier's signers against its threshold, decided once by the envelope check."""

    MET = "met"
    WARNED = "warned"  # short, with at least one valid signer, in a hook: warns only
    NOT_MET = "not met"


@dataclass(frozen=True, kw_only=True, slots=True)
class TierSummary:
    """What verification saw for one tier."""

    name: str
    threshold: int
    on_change: str
    files: int = 0
    sequence: int | None = None
    signers: tuple[str, ...] = ()
    created: str | None = None
    expires: str | None = None
    # Set by the verifier (`checks.envelope`); None only in reports from older versions.
    verdict: TierVerdict | None = None

    @property
    def threshold_met(self) -> bool:
        """Enough distinct trusted signers (always, for an unsigned tier); renderers,
        overrides and status read it."""
        if self.verdict is not None:
            return self.verdict is TierVerdict.MET
        return len(self.signers) >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "threshold": self.threshold,
            "on_change": self.on_change,
            "files": self.files,
            "sequence": self.sequence,
            "signers": list(self.signers),
            "created": self.created,
            "expires": self.expires,
            "verdict": self.verdict.value if self.verdict else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TierSummary:
        return cls(
            name=d["name"],
            threshold=d["threshold"],
            on_change=d["on_change"],
            files=d.get("files", 0),
            sequence=d.get("sequence"),
            signers=tuple(d.get("signers") or ()),
            created=d.get("created"),
            expires=d.get("expires"),
            verdict=TierVerdict(d["verdict"]) if d.get("verdict") else None,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseInfo:
    """The vulnerability data a scan used."""

    source: str  # "offline" | "osv" | "pypi"
    name: str
    location: str | None = None
    date: str | None = None
    age_days: int | None = None
    records: int | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "name": self.name,
            "location": self.location,
            "date": self.date,
            "age_days": self.age_days,
            "records": self.records,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatabaseInfo:
        return cls(
            source=d["source"],
            name=d["name"],
            location=d.get("location"),
            date=d.get("date"),
            age_days=d.get("age_days"),
            records=d.get("records"),
            note=d.get("note"),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Inputs:
    """What a dependency scan read and checked, so a report says what was checked and not
    only what was found ("nothing was checked" is then visible)."""

    files: tuple[str, ...] = ()  # dependency files read, relative POSIX paths
    packages: int = 0  # distinct (name, version) pairs looked up
    dependencies: int = 0  # dependency declarations read (one package may be declared twice)
    services: tuple[str, ...] = ()  # what answered: "offline", "osv", "pypi", "bandit"

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "packages": self.packages,
            "dependencies": self.dependencies,
            "services": list(self.services),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Inputs:
        return cls(
            files=tuple(d.get("files") or ()),
            packages=int(d.get("packages", 0)),
            dependencies=int(d.get("dependencies", 0)),
            services=tuple(d.get("services") or ()),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Fix:
    """A version that clears a package's findings: suggested, or applied by `deps --fix`."""

    package: str
    version: str | None
    fixed: str
    path: str | None
    applied: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "fixed": self.fixed,
            "path": self.path,
            "applied": self.applied,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Fix:
        return cls(
            package=d["package"],
            version=d.get("version"),
            fixed=d["fixed"],
            path=d.get("path"),
            applied=bool(d.get("applied", False)),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Override:
    """An emergency override: who let a blocked change through, when and why."""

    reason: str
    who: str
    when: str
    commit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "who": self.who, "when": self.when, "commit": self.commit}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Override:
        return cls(reason=d["reason"], who=d["who"], when=d["when"], commit=d.get("commit"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Report:
    """One run of the guard. `verdict` and `counts` are derived, never stored separately."""

    tool_version: str
    target: str
    started: datetime
    duration_s: float
    fail_on: Severity = Severity.HIGH
    command: str = "verify"
    commit: str | None = None
    trust_source: str | None = None
    tiers: tuple[TierSummary, ...] = ()
    database: DatabaseInfo | None = None
    inputs: Inputs | None = None
    overrides: tuple[Override, ...] = ()
    findings: tuple[Finding, ...] = ()
    fixes: tuple[Fix, ...] = ()

    def __post_init__(self) -> None:
        # Every report holds unique findings and says when nothing was checked, however it
        # was built (a producer, `merged`, `replace`, `from_dict`): renderers rely on both.
        findings = tuple(self.findings) + nothing_checked(self)
        object.__setattr__(self, "findings", merge_findings(findings))
        object.__setattr__(self, "fixes", tuple(self.fixes))

    @property
    def active_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.suppressed is None)

    @property
    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in SEVERITY_ORDER}
        for f in self.active_findings:
            counts[f.severity.value] += 1
        return counts

    def is_failing(self, finding: Finding) -> bool:
        return finding.suppressed is None and finding.severity.rank >= self.fail_on.rank

    @property
    def verdict(self) -> Verdict:
        return Verdict.FAIL if any(self.is_failing(f) for f in self.findings) else Verdict.PASS

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.FINDINGS if self.verdict is Verdict.FAIL else ExitCode.OK

    def sorted_findings(self) -> list[Finding]:
        order = {s: i for i, s in enumerate(SEVERITY_ORDER)}
        return sorted(
            self.findings,
            key=lambda f: (
                f.suppressed is not None,
                order[f.severity],
                f.rule,
                f.location.path if f.location else "",
                f.package or "",
            ),
        )

    def merged(self, other: Report) -> Report:
        """Combine two runs (verify + deps) into one report."""
        return replace(
            self,
            command="ci" if self.command != other.command else self.command,
            duration_s=self.duration_s + other.duration_s,
            tiers=self.tiers or other.tiers,
            database=self.database or other.database,
            inputs=self.inputs or other.inputs,
            overrides=self.overrides + other.overrides,
            findings=self.findings + other.findings,
            fixes=self.fixes + other.fixes,
            commit=self.commit or other.commit,
            trust_source=self.trust_source or other.trust_source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "tool": {"name": "qeguard", "version": self.tool_version},
            "command": self.command,
            "target": self.target,
            "commit": self.commit,
            "trust_source": self.trust_source,
            "started": self.started.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "fail_on": self.fail_on.value,
            "verdict": self.verdict.value,
            "counts": self.counts,
            "tiers": [t.to_dict() for t in self.tiers],
            "database": self.database.to_dict() if self.database else None,
            "inputs": self.inputs.to_dict() if self.inputs else None,
            "overrides": [o.to_dict() for o in self.overrides],
            "findings": [f.to_dict() for f in self.sorted_findings()],
            "fixes": [x.to_dict() for x in self.fixes],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Report:
        if d.get("schema") != REPORT_SCHEMA:
            raise ConfigError(
                f"not a qeguard report (schema {d.get('schema')!r})",
                where="schema",
                hint=f"expected {REPORT_SCHEMA!r}; re-run qeguard with --format json",
            )
        return cls(
            tool_version=d["tool"]["version"],
            command=d.get("command", "verify"),
            target=d["target"],
            commit=d.get("commit"),
            trust_source=d.get("trust_source"),
            started=datetime.fromisoformat(d["started"]),
            duration_s=float(d["duration_s"]),
            fail_on=Severity(d["fail_on"]),
            tiers=tuple(TierSummary.from_dict(t) for t in d.get("tiers", ())),
            database=DatabaseInfo.from_dict(d["database"]) if d.get("database") else None,
            inputs=Inputs.from_dict(d["inputs"]) if d.get("inputs") else None,
            overrides=tuple(Override.from_dict(o) for o in d.get("overrides", ())),
            findings=tuple(Finding.from_dict(f) for f in d.get("findings", ())),
            fixes=tuple(Fix.from_dict(x) for x in d.get("fixes") or ()),
        )


def count_by(findings: Iterable[Finding], key: str) -> dict[str, int]:
    """Active findings grouped by `tier` or `package` (for charts and summaries)."""
    out: dict[str, int] = {}
    for f in findings:
        if f.suppressed is not None:
            continue
        name = getattr(f, key) or "(none)"
        out[name] = out.get(name, 0) + 1
    return out


def merge_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """One finding per fingerprint, in first-seen order, with every place it was found.

    Of the duplicates, an active one wins over a suppressed one (a suppression must hold
    for every declaration to hide the finding), then the most severe; its primary location
    is the first of all the places in path order, so the result does not depend on the
    order in which producers read the files.
    """
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.fingerprint, []).append(f)
    out: list[Finding] = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        base = min(group, key=lambda f: (f.suppressed is not None, -f.severity.rank))
        places = sorted({loc for f in group for loc in f.locations}, key=lambda x: x.sort_key)
        out.append(replace(base, location=places[0] if places else None, also_at=tuple(places[1:])))
    return tuple(out)


def nothing_checked(report: Report) -> tuple[Finding, ...]:
    """The finding that fails a dependency scan which read nothing or had no data.

    Its severity is at least `high` and at least `fail_on`, so it fails whatever the
    policy's threshold: a clean result from an empty scan would be a false assurance.
    """
    inputs, db = report.inputs, report.database
    reasons: list[str] = []
    if inputs is not None and not inputs.files and inputs.dependencies == 0:
        reasons.append("no dependency file or installed package was read")
    if db is not None and db.records == 0:
        reasons.append(f"the vulnerability database {db.name} holds no records")
    if not reasons:
        return ()
    severity = report.fail_on if report.fail_on.rank > Severity.HIGH.rank else Severity.HIGH
    return (
        Finding(
            rule=RuleId.DEP_NOTHING_CHECKED,
            severity=severity,
            title="the dependency scan checked nothing",
            message="; ".join(reasons) + ", so no vulnerability could have been found",
            fix="pass the project's requirements or lock files (`qeguard deps FILE`), or "
            "load a database (`qeguard db update`)",
        ),
    )
