"""The verifier: a trusted config and a tree in, findings and tier summaries out.

It runs the pure checks of `qeguard.integrity.checks` in order: the config change (was
it approved by the old trust?), each tier's signed state (`checks.envelope`), then every
entry against what the tree holds (`checks.entries`). The only I/O goes through the
`Tree` it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qeguard.integrity.checks.config_change import approve_config_change
from qeguard.integrity.checks.entries import compare
from qeguard.integrity.checks.envelope import Options, check_tier
from qeguard.integrity.config import Config
from qeguard.integrity.layout import envelope_path, list_path
from qeguard.integrity.manifest import unsafe_path_reason
from qeguard.integrity.policy import policy_findings
from qeguard.integrity.trees.base import Tree
from qeguard.report import Finding, TierSummary


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
    progress: Callable[[int], None] | None = None,
) -> Result:
    """Verify `tree` against the trust in `trusted`.

    `candidate` is the config found in the tree itself; it replaces `trusted` only when
    the old trust approved it.
    """
    if opts.only_paths is None and (list_ahead := getattr(tree, "list_ahead", None)):
        list_ahead()  # git walks a working tree for untracked files while lists are parsed
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

    signed: set[str] = set()
    for c in checks:
        if c.entries is None:
            continue
        for e in c.entries:
            if unsafe_path_reason(e.path) is None and (
                opts.only_paths is None or e.path in opts.only_paths
            ):
                signed.add(e.path)
    # A working tree can hash the signed files in the background (large trees), while
    # git lists the candidates and the policy assigns their tiers.
    signed_sorted = sorted(signed)
    # A progress display (`cli.progress.Progress`) learns the total as soon as it is known.
    expect = getattr(progress, "expect", None)
    if expect is not None:
        expect(len(signed_sorted))
    observe_ahead = getattr(tree, "observe_ahead", None)
    if observe_ahead is not None:
        observe_ahead(signed_sorted, progress)

    matcher = policy.matcher()
    assigned: dict[str, list[str]] = {t.name: [] for t in policy.tiers}
    paths = tree.candidates() if opts.only_paths is None else sorted(opts.only_paths)
    # Where the policy cannot work (a pattern that matches nothing needs the whole tree).
    findings.extend(
        policy_findings(
            policy,
            trust.key_counts([t.name for t in policy.tiers], opts.now),
            paths if opts.only_paths is None else None,
        )
    )
    for path in paths:
        name = matcher.tier_of(path)
        if name is not None:
            assigned[name].append(path)
    wanted = set(signed)
    for c in checks:
        if c.entries is not None:
            wanted.update(assigned[c.tier.name])
    # Usually every protected path is signed: then the sorted list is already at hand.
    to_observe = signed_sorted if len(wanted) == len(signed) else sorted(wanted)
    if expect is not None:
        expect(len(to_observe))
    observe: Any = tree.observe  # WorkTree.observe also takes a progress callback
    observed = observe(to_observe, progress) if progress is not None else observe(to_observe)
    summaries: list[TierSummary] = []
    for c in checks:
        if c.entries is not None:
            findings.extend(
                compare(
                    c.tier,
                    c.entries,
                    assigned[c.tier.name],
                    observed,
                    exec_bit_meaningful=tree.exec_bit_meaningful,
                    hints=opts.hints,
                )
            )
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
            )
        )
    return Result(findings=findings, tiers=summaries, effective=effective)
