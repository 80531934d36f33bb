"""The verifier: a trusted config and a tree in, findings and tier summaries out.

It runs the pure checks of `qeguard.integrity.checks` in order: the config change (was
it approved by the old trust?), each tier's signed state (`checks.envelope`), then every
entry against what the tree holds (`checks.entries`). The only I/O goes through the
`Tree` it is given, which scans every signed list as a stream (`Tree.scan`); progress
comes in as plain functions (`Pipeline`), so the verifier never looks at the tree's type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qeguard.integrity.checks.config_change import approve_config_change
from qeguard.integrity.checks.entries import compare_block, compare_unlisted
from qeguard.integrity.checks.envelope import Options, check_tier
from qeguard.integrity.config import Config
from qeguard.integrity.layout import envelope_path, list_path
from qeguard.integrity.policy import policy_findings
from qeguard.integrity.trees.base import Tree
from qeguard.report import Finding, TierSummary


@dataclass(frozen=True, kw_only=True, slots=True)
class Pipeline:
    """How a long scan reports progress; the defaults report nothing."""

    # Told how many list entries the scan goes through, once known.
    expect: Callable[[int], None] | None = None
    # Told how many more it has been through, as it goes.
    progress: Callable[[int], None] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Result:
    findings: list[Finding]
    tiers: list[TierSummary]
    effective: Config


def verify(
    tree: Tree,
    trusted: Config,
    opts: Options,
    *,
    candidate: Config | None = None,
    pipeline: Pipeline = Pipeline(),
) -> Result:
    """Verify `tree` against the trust in `trusted`.

    `candidate` is the config found in the tree itself; it replaces `trusted` only when
    the old trust approved it.
    """
    tree.prepare(whole=opts.only_paths is None)  # e.g. git lists its index meanwhile
    findings: list[Finding] = []
    effective = trusted
    if candidate is not None and (candidate.policy_bytes, candidate.trust_bytes) != (
        trusted.policy_bytes,
        trusted.trust_bytes,
    ):
        problems = approve_config_change(trusted, candidate, tree, opts)
        if problems:
            findings.extend(problems)
        else:
            effective = candidate
    policy, trust = effective.policy, effective.trust
    checks = [
        check_tier(
            t, policy, trust, tree.read(list_path(t.name)), tree.read(envelope_path(t.name)), opts
        )
        for t in policy.tiers
    ]
    for c in checks:
        findings.extend(c.findings)

    # The tree scans every list as a stream, block by block, and gives the policy's
    # unsigned candidates last; nothing holds an object per entry.
    lists = {c.tier.name: c.entries for c in checks if c.entries is not None}
    tiers = {c.tier.name: c.tier for c in checks}
    # A progress display learns the total as soon as it is known.
    if pipeline.expect is not None:
        pipeline.expect(sum(len(e) for e in lists.values()))
    scan = tree.scan(
        lists, policy.matcher().tier_of, only=opts.only_paths, progress=pipeline.progress
    )
    found: dict[str, list[Finding]] = {name: [] for name in lists}
    exec_bit = tree.exec_bit_meaningful
    for name, block in scan.blocks():
        found[name] += compare_block(
            tiers[name], lists[name], block, exec_bit_meaningful=exec_bit, hints=opts.hints
        )
    for name, unlisted in scan.unlisted().items():
        found[name] += compare_unlisted(tiers[name], lists[name], unlisted, hints=opts.hints)
    # Where the policy cannot work (a pattern that matches nothing needs the whole tree).
    findings.extend(
        policy_findings(
            policy,
            trust.key_counts([t.name for t in policy.tiers], opts.now),
            scan.candidates() if opts.only_paths is None else None,
        )
    )
    summaries: list[TierSummary] = []
    for c in checks:
        if c.entries is not None:
            findings.extend(found[c.tier.name])
        summaries.append(
            TierSummary(
                name=c.tier.name,
                threshold=c.tier.threshold,
                on_change=c.tier.on_change.value,
                files=c.payload.count if c.entries is not None and c.payload else 0,
                sequence=c.payload.sequence if c.payload else None,
                signers=c.signers.signers,
                created=c.payload.created if c.payload else None,
                expires=c.payload.expires if c.payload else None,
                verdict=c.verdict,
            )
        )
    return Result(findings=findings, tiers=summaries, effective=effective)
