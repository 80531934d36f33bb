"""A changed policy.toml or trust.toml counts only when the old trust approved it."""

from __future__ import annotations

import hashlib

from qeguard.integrity.checks.envelope import Options, check_tier
from qeguard.integrity.checks.findings import sign_hint, tier_finding
from qeguard.integrity.config import Config
from qeguard.integrity.layout import POLICY_PATH, TRUST_PATH, envelope_path, list_path
from qeguard.integrity.trees.base import Tree
from qeguard.report import Finding, Severity
from qeguard.rules import RuleId


def approve_config_change(
    trusted: Config, candidate: Config, tree: Tree, opts: Options
) -> list[Finding]:
    """A changed policy.toml/trust.toml counts only if the strictest tier, signed by the
    *old* trust's threshold, covers the new bytes (TUF-style root rotation).

    Returns findings; an empty list means the candidate config is approved.
    """
    tier = trusted.policy.strictest
    check = check_tier(
        tier,
        trusted.policy,
        trusted.trust,
        tree.read(list_path(tier.name)),
        tree.read(envelope_path(tier.name)),
        Options(now=opts.now),
    )
    problems: list[str] = []
    if check.entries is None:
        problems.append("the strictest tier's manifest is missing or invalid")
    elif len(check.signers) < max(tier.threshold, 1):
        problems.append(
            f"signed by {len(check.signers)} of the {max(tier.threshold, 1)} "
            f"required trusted signer(s) ({', '.join(check.signers.signers) or 'none'})"
        )
    else:
        listed = {e.path: e.sha256 for e in check.entries}
        for path, old, new in (
            (POLICY_PATH, trusted.policy_bytes, candidate.policy_bytes),
            (TRUST_PATH, trusted.trust_bytes, candidate.trust_bytes),
        ):
            if old != new and listed.get(path) != hashlib.sha256(new).hexdigest():
                problems.append(f"the new {path} is not covered by the signed manifest")
    if not problems:
        return []
    return [
        tier_finding(
            RuleId.TRUST_CHANGE,
            tier,
            f"policy/trust changed relative to {trusted.label}, but "
            + "; ".join(problems)
            + f"; verifying with the trust from {trusted.label}",
            title="Unapproved trust change",
            # The file that changed (trust.toml when both did: it names who is trusted).
            path=TRUST_PATH if candidate.trust_bytes != trusted.trust_bytes else POLICY_PATH,
            severity=Severity.CRITICAL,
            fix=f"signers trusted at {trusted.label} for tier {tier.name!r} run: "
            f"{sign_hint(tier.name, opts.hints)}",
        )
    ]
