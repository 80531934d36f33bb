"""One tier's signed state: the envelope parsed strictly, its payload bound to the list,
the distinct trusted signers counted against the threshold, expiry, policy digest and
rollback. Everything about a tier that does not need the tree."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qeguard.errors import EnvelopeError
from qeguard.hints import DEFAULT, Hints
from qeguard.integrity.checks.entries import PARTIAL_MAX, entries_for
from qeguard.integrity.checks.findings import sign_hint, tier_finding
from qeguard.integrity.dsse import PAYLOAD_TYPE, Envelope
from qeguard.integrity.layout import envelope_path, list_path
from qeguard.integrity.manifest import EntryList, Payload, read_list
from qeguard.integrity.policy import Policy, Tier
from qeguard.integrity.trust import SignatureCount, Trust, count_signers
from qeguard.report import Finding, Severity, TierVerdict
from qeguard.rules import RuleId


@dataclass(frozen=True, kw_only=True, slots=True)
class TierCheck:
    """The signed state of one tier, before comparing with the tree."""

    tier: Tier
    entries: EntryList | None  # None when the list cannot be trusted at all
    payload: Payload | None
    signers: SignatureCount = field(default_factory=SignatureCount)
    findings: list[Finding] = field(default_factory=list)
    # Signers against the threshold: the one verdict the summary, restores and
    # overrides read. NOT_MET too when the manifest cannot be trusted at all.
    verdict: TierVerdict = TierVerdict.NOT_MET


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    now: datetime
    # The hooks' relaxation: a threshold shortfall with at least one valid signature only
    # warns. Never set for plain verify, ci or --commit.
    local: bool = False
    # Base payloads (HEAD or the trust ref) for the rollback check, by tier.
    base_payloads: Mapping[str, bytes] = field(default_factory=dict)
    # The highest-sequence payload each tier had along the trust history, by tier: a
    # sequence only grows along that history.
    history_payloads: Mapping[str, bytes] = field(default_factory=dict)
    # Restrict the comparison to these paths (the staged ones); None = every path.
    only_paths: frozenset[str] | None = None
    # How fix hints are worded for where the user is (folder, hook mode).
    hints: Hints = DEFAULT


def check_tier(
    tier: Tier,
    policy: Policy,
    trust: Trust,
    list_bytes: bytes | None,
    envelope_bytes: bytes | None,
    opts: Options,
) -> TierCheck:
    """Everything about one tier's manifest that does not need the tree."""
    lpath, epath = list_path(tier.name), envelope_path(tier.name)
    findings: list[Finding] = []

    def problem(rule: str, message: str, *, title: str, path: str, **kw: Any) -> Finding:
        kw.setdefault("fix", sign_hint(tier.name, opts.hints))
        return tier_finding(rule, tier, message, title=title, path=path, **kw)

    def rejected(finding: Finding, payload: Payload | None = None) -> TierCheck:
        # The list cannot be trusted at all: no entries to compare with the tree.
        return TierCheck(tier=tier, entries=None, payload=payload, findings=[*findings, finding])

    if list_bytes is None or envelope_bytes is None:
        missing = epath if envelope_bytes is None else lpath
        return rejected(
            problem(
                RuleId.SIG_MISSING,
                f"tier {tier.name!r} has no signed manifest ({missing} is missing)",
                title="Manifest missing",
                path=missing,
            )
        )
    try:
        envelope = Envelope.from_bytes(envelope_bytes, source=epath)
        if envelope.payload_type != PAYLOAD_TYPE:
            return rejected(
                problem(
                    RuleId.SIG_BINDING,
                    f"payloadType is {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}",
                    title="Wrong payload type",
                    path=epath,
                )
            )
        payload = Payload.from_bytes(envelope.payload, source=epath)
        if payload.tier != tier.name:
            return rejected(
                problem(
                    RuleId.SIG_BINDING,
                    f"the envelope was signed for tier {payload.tier!r}, not {tier.name!r}",
                    title="Envelope from another tier",
                    path=epath,
                ),
                payload,
            )
        # The list is bound before it is parsed: a list its payload does not name costs
        # one hash, however large (a valid list has one line per entry).
        digest = hashlib.sha256(list_bytes).hexdigest()
        count = list_bytes.count(b"\n")
        if digest != payload.list_sha256 or count != payload.count:
            return rejected(
                problem(
                    RuleId.SIG_BINDING,
                    f"{lpath} does not match its signed payload (digest {digest[:12]} vs "
                    f"{payload.list_sha256[:12]}, {count} vs {payload.count} entries)",
                    title="List does not match signature",
                    path=lpath,
                ),
                payload,
            )
        partial = opts.only_paths is not None and len(opts.only_paths) <= PARTIAL_MAX
        entries = (
            entries_for(list_bytes, opts.only_paths or frozenset(), lpath)
            if partial
            else read_list(list_bytes, source=lpath)
        )
    except EnvelopeError as exc:
        return rejected(
            problem(
                RuleId.SIG_MALFORMED,
                exc.diagnostics(),
                title="Manifest malformed",
                path=exc.where.split(":")[0] if exc.where else epath,
            )
        )
    signers = count_signers(envelope, trust, tier.name, opts.now)
    verdict = threshold_verdict(len(signers), tier.threshold, local=opts.local)
    if verdict is not TierVerdict.MET:
        who = ", ".join(signers.signers) or "nobody trusted"
        uncounted = f"; not counted: {'; '.join(signers.rejected)}" if signers.rejected else ""
        findings.append(
            problem(
                RuleId.SIG_THRESHOLD,
                f"tier {tier.name!r} needs {tier.threshold} distinct trusted signer(s), has "
                f"{len(signers)} ({who}){uncounted}"
                + ("; allowed in this hook, CI blocks" if verdict is TierVerdict.WARNED else ""),
                title="Not enough signers",
                path=epath,
                fix=f"another signer of tier {tier.name!r} runs: "
                f"{sign_hint(tier.name, opts.hints)}",
                severity=Severity.LOW if verdict is TierVerdict.WARNED else None,
                details={"signers": list(signers.signers), "threshold": tier.threshold},
            )
        )
    if payload.expires_at <= opts.now:
        findings.append(
            problem(
                RuleId.SIG_EXPIRED,
                f"the manifest of tier {tier.name!r} expired at {payload.expires}",
                title="Manifest expired",
                path=epath,
            )
        )
    if payload.policy_sha256 != policy.sha256:
        findings.append(
            problem(
                RuleId.SIG_POLICY,
                f"tier {tier.name!r} was signed under a different policy "
                f"(policy digest {payload.policy_sha256[:12]}, now {policy.sha256[:12]})",
                title="Policy changed since signing",
                path=policy.source.split(" ")[0],
            )
        )
    for base, against in (
        (opts.base_payloads.get(tier.name), "the base's"),
        (opts.history_payloads.get(tier.name), "the highest along the trust history,"),
    ):
        if base is None or base == envelope.payload:
            continue
        try:
            base_seq = Payload.from_bytes(base, source="base").sequence
        except EnvelopeError:
            base_seq = 0
        if payload.sequence <= base_seq:
            findings.append(
                problem(
                    RuleId.SIG_ROLLBACK,
                    f"the payload of tier {tier.name!r} changed but its "
                    f"sequence {payload.sequence} is not above {against} {base_seq}",
                    title="Manifest rollback",
                    path=epath,
                    severity=Severity.CRITICAL,
                )
            )
            break
    return TierCheck(
        tier=tier,
        entries=entries,
        payload=payload,
        signers=signers,
        findings=findings,
        verdict=verdict,
    )


def threshold_verdict(signers: int, threshold: int, *, local: bool) -> TierVerdict:
    """Met, short but only warned (a hook, at least one valid signer), or not met."""
    if signers >= threshold:
        return TierVerdict.MET
    return TierVerdict.WARNED if local and signers >= 1 else TierVerdict.NOT_MET
