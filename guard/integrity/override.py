"""Emergency overrides: a `Qeguard-Override: <reason>` trailer, `--override`, or
`$QEGUARD_OVERRIDE` lets a blocked change through in a hook; elsewhere it is a finding.

In a hook on a developer's machine (`local`: `verify --hook`, not under CI) an override
suppresses the blocking findings and says so. Everywhere else (plain verify, `--commit`,
CI) it never suppresses anything: it becomes a QG-OVERRIDE finding that clears only once
every tier the overridden change touched verifies clean with its full threshold of
signers, i.e. the tier's signers co-signed the change afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from qeguard.integrity.policy import TierMatcher
from qeguard.report import Finding, Location, Override, Report, Severity, Suppression
from qeguard.rules import RuleId

TRAILER = "Qeguard-Override"
ENV = "QEGUARD_OVERRIDE"
_TRAILER_LINE = re.compile(rf"^{TRAILER}\s*:\s*(?P<reason>.*\S)\s*$", re.IGNORECASE)
_SCISSORS = re.compile(r"^# -+ >8 -+$")


def trailers(message: str) -> list[str]:
    """Override reasons in a commit message's trailer block (its last paragraph).

    Comment lines and everything below git's scissors line are dropped first, the way
    git itself cleans a message in `commit-msg`.
    """
    lines: list[str] = []
    for line in message.splitlines():
        if _SCISSORS.match(line):
            break
        if not line.startswith("#"):
            lines.append(line.rstrip())
    while lines and not lines[-1]:
        lines.pop()
    block: list[str] = []
    for line in reversed(lines):
        if not line:
            break
        block.append(line)
    reasons = []
    for line in reversed(block):
        m = _TRAILER_LINE.match(line)
        if m:
            reasons.append(m.group("reason"))
    return reasons


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    """An override and the paths of the change it was made for (None: this run's own)."""

    override: Override
    changed: tuple[str, ...] | None = None


def apply(
    report: Report, claims: Sequence[Claim], *, local: bool, matcher: TierMatcher | None
) -> Report:
    """The report with overrides recorded (and, locally, blocking findings suppressed)."""
    if not claims:
        return report
    overrides = tuple(c.override for c in claims)
    findings = list(report.findings)
    failing = [f for f in findings if report.is_failing(f) and f.rule != RuleId.OVERRIDE]
    if local:
        reason = "; ".join(o.reason for o in overrides)
        suppression = Suppression(reason=reason, kind="override")  # kind says "override"
        findings = [f.suppress(suppression) if f in failing else f for f in findings]
        for o in overrides:
            findings.append(
                _override_finding(
                    o,
                    Severity.LOW if failing else Severity.INFO,
                    f"{o.who} overrode the guard at {o.when}: {o.reason}; "
                    f"{len(failing)} blocking finding(s) let through locally. CI blocks until "
                    "each affected tier's threshold of signers co-signs the change.",
                )
            )
        return replace(report, findings=tuple(findings), overrides=report.overrides + overrides)
    open_tiers = _open_tiers(report, failing)
    for c in claims:
        o = c.override
        if c.changed is None or matcher is None:
            touched = {f.tier for f in failing if f.tier}
        else:
            touched = {t for p in c.changed if (t := matcher.tier_of(p)) is not None}
        guarded = {t.name for t in report.tiers if t.threshold > 0}
        touched &= guarded
        blocking = sorted(touched & open_tiers)
        where = f" in commit {o.commit[:12]}" if o.commit else ""
        if blocking:
            findings.append(
                _override_finding(
                    o,
                    Severity.HIGH,
                    f"{o.who} overrode the guard{where} at {o.when}: {o.reason}. Tier(s) "
                    f"{', '.join(blocking)} are not yet co-signed by their threshold.",
                    fix="signers of " + ", ".join(blocking) + " run: qeguard sign --tier "
                    f"{','.join(blocking)} --key KEY && git add .qeguard && git commit",
                    tiers=blocking,
                )
            )
        else:
            cleared = sorted(touched) or ["(no protected tier)"]
            finding = _override_finding(
                o,
                Severity.HIGH,
                f"{o.who} overrode the guard{where} at {o.when}: {o.reason}",
                tiers=sorted(touched),
            )
            findings.append(
                finding.suppress(
                    Suppression(
                        reason=f"co-signed afterwards: {', '.join(cleared)} verify clean "
                        "with their threshold",
                        kind="override",
                    )
                )
            )
    return replace(report, findings=tuple(findings), overrides=report.overrides + overrides)


def _open_tiers(report: Report, failing: Iterable[Finding]) -> set[str]:
    """Tiers that still block: a failing finding, or fewer signers than the threshold."""
    out = {f.tier for f in failing if f.tier}
    for t in report.tiers:
        if not t.threshold_met:
            out.add(t.name)
    return out


def _override_finding(
    o: Override,
    severity: Severity,
    message: str,
    *,
    fix: str | None = None,
    tiers: Sequence[str] = (),
) -> Finding:
    details: Mapping[str, object] = {
        "who": o.who,
        "when": o.when,
        "reason": o.reason,
        "commit": o.commit,
        "tiers": list(tiers),
        "id": o.commit or o.reason,
    }
    return Finding(
        rule=RuleId.OVERRIDE,
        severity=severity,
        title="Emergency override",
        message=message,
        location=Location(path=".qeguard") if o.commit is None else None,
        tier=tiers[0] if len(tiers) == 1 else None,
        fix=fix,
        details=dict(details),
    )
