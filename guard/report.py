"""The guard report: one model that integrity checks and the dependency scan both fill.

Renderers (one module per format beside this one) read a `Report` and never compute
verdicts of their own; everything they show comes from here, so all formats agree.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from qeguard.errors import ConfigError, ExitCode

REPORT_SCHEMA = "qeguard.report/v1"


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


@dataclass(frozen=True, kw_only=True, slots=True)
class Suppression:
    """Why a finding does not count: an ignore entry, an override, a local relaxation."""

    reason: str
    kind: str = "ignore"  # ignore | override | local
    expires: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One thing the guard found. `fingerprint` is stable across runs for the same issue."""

    rule: str
    severity: Severity
    title: str
    message: str
    location: Location | None = None
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

    def compute_fingerprint(self) -> str:
        # Stable identity: what is wrong and where, not the wording or the line number,
        # so that reflowing a requirements file does not make an old finding look new.
        parts = [
            self.rule,
            self.location.path if self.location else "",
            self.tier or "",
            self.package or "",
            self.version or "",
            str(self.details.get("id", "")),
        ]
        return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[
            :32
        ]

    def suppress(self, suppression: Suppression) -> Finding:
        return replace(self, suppressed=suppression)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "severity": self.severity.value,
            "title": self.title,
            "message": self.message,
            "location": (
                {"path": self.location.path, "line": self.location.line} if self.location else None
            ),
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
            location=Location(path=loc["path"], line=loc.get("line")) if loc else None,
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

    @property
    def threshold_met(self) -> bool:
        """Enough distinct trusted signers (always, for an unsigned tier). The one place
        this is computed; renderers, overrides and status read it."""
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
