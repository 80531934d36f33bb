"""How the checks word a finding about a tier, and the command that re-signs it."""

from __future__ import annotations

from collections.abc import Mapping

from qeguard.hints import DEFAULT, Hints
from qeguard.integrity.policy import Tier
from qeguard.report import Finding, Location, Severity


def tier_finding(
    rule: str,
    tier: Tier,
    message: str,
    *,
    title: str,
    path: str | None = None,
    fix: str | None = None,
    severity: Severity | None = None,
    details: Mapping[str, object] | None = None,
) -> Finding:
    return Finding(
        rule=rule,
        severity=severity or tier.finding_severity,
        title=title,
        message=message,
        location=Location(path=path) if path else None,
        tier=tier.name,
        fix=fix,
        details=dict(details or {}),
    )


def sign_hint(tier: str, hints: Hints = DEFAULT) -> str:
    return hints.sign(tier)
