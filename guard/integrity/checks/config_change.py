"""A changed policy.toml or trust.toml counts only when the old trust approved it.

The rule is TUF's root rotation: the strictest tier's manifest, signed by the threshold of
the configuration *before* the change, must list the new files' digests. The trust walk
(`qeguard.integrity.trust_source`) applies it to every change along the history; the
verifier applies it once more to the tree under test. Pure: configs and bytes in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from qeguard.integrity.checks.envelope import Options, check_tier
from qeguard.integrity.checks.findings import sign_hint, tier_finding
from qeguard.integrity.config import Config
from qeguard.integrity.layout import CONFIG_PATHS, POLICY_PATH, TRUST_PATH, envelope_path, list_path
from qeguard.integrity.trees.base import Tree
from qeguard.report import Finding, Severity
from qeguard.rules import RuleId


@dataclass(frozen=True, kw_only=True, slots=True)
class Approval:
    """Whether the old trust approved a new config, and if not, why."""

    problems: tuple[str, ...] = ()
    signers: tuple[str, ...] = ()  # old-trust signers of the covering manifest
    # The one problem is a threshold shortfall with at least one valid old signer: the
    # state a co-signed rotation is in before the last signer signs.
    short_only: bool = False

    @property
    def approved(self) -> bool:
        return not self.problems


def approval(
    old: Config,
    new: Config,
    list_bytes: bytes | None,
    envelope_bytes: bytes | None,
    *,
    at: datetime,
) -> Approval:
    """Does the strictest tier's manifest (`list_bytes`, `envelope_bytes`), signed by the
    threshold of `old` (counted at time `at`), cover `new`'s policy and trust bytes?"""
    tier = old.policy.strictest
    needed = max(tier.threshold, 1)
    check = check_tier(
        tier,
        old.policy,
        old.trust,
        list_bytes,
        envelope_bytes,
        # Only the two config entries are needed; the list is still bound as a whole.
        Options(now=at, only_paths=frozenset(CONFIG_PATHS)),
    )
    if check.entries is None:
        return Approval(problems=("the strictest tier's manifest is missing or invalid",))
    problems: list[str] = []
    signers = check.signers.signers
    if len(signers) < needed:
        problems.append(
            f"signed by {len(signers)} of the {needed} required trusted signer(s) "
            f"({', '.join(signers) or 'none'})"
        )
    listed = {e.path: e.sha256 for e in check.entries}
    uncovered = [
        path
        for path, before, after in (
            (POLICY_PATH, old.policy_bytes, new.policy_bytes),
            (TRUST_PATH, old.trust_bytes, new.trust_bytes),
        )
        if before != after and listed.get(path) != hashlib.sha256(after).hexdigest()
    ]
    problems += [f"the new {path} is not covered by the signed manifest" for path in uncovered]
    return Approval(
        problems=tuple(problems),
        signers=signers,
        short_only=len(problems) == 1 and not uncovered and len(signers) >= 1,
    )


def approve_config_change(
    trusted: Config, candidate: Config, tree: Tree, opts: Options
) -> list[Finding]:
    """The tree's config against the trusted one: findings, or [] when approved.

    Locally (the hooks) a rotation short of its last co-signer only warns, so that it can
    be pushed for co-signing; it is still not in force until the threshold signs.
    """
    tier = trusted.policy.strictest
    result = approval(
        trusted,
        candidate,
        tree.read(list_path(tier.name)),
        tree.read(envelope_path(tier.name)),
        at=opts.now,
    )
    if result.approved:
        return []
    return [
        tier_finding(
            RuleId.TRUST_CHANGE,
            tier,
            f"policy/trust changed relative to {trusted.label}, but "
            + "; ".join(result.problems)
            + f"; verifying with the trust from {trusted.label}",
            title="Unapproved trust change",
            # The file that changed (trust.toml when both did: it names who is trusted).
            path=TRUST_PATH if candidate.trust_bytes != trusted.trust_bytes else POLICY_PATH,
            severity=Severity.LOW if opts.local and result.short_only else Severity.CRITICAL,
            fix=f"signers trusted at {trusted.label} for tier {tier.name!r} run: "
            f"{sign_hint(tier.name, opts.hints)}",
            details={"signers": list(result.signers)},
        )
    ]
