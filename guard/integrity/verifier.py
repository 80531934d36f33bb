"""Verification: bytes and parsed objects in, findings out.

The only I/O here goes through a `Tree` (guard.scan) and the `Config` the caller loaded
from wherever trust comes from (guard.gitio / guard.workspace). The steps per tier:
envelope well-formed -> payloadType -> list digest and count -> distinct trusted signers
>= threshold -> not expired -> policy digest -> tier name -> sequence against the base ->
every entry against the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qeguard.errors import EnvelopeError, GuardError
from qeguard.integrity.dsse import PAYLOAD_TYPE, Envelope
from qeguard.integrity.layout import CONFIG_PATHS, POLICY_PATH, TRUST_PATH, envelope_path, list_path
from qeguard.integrity.manifest import (
    Entry,
    Kind,
    Payload,
    parse_list,
    quote_path,
    unsafe_path_reason,
)
from qeguard.integrity.policy import Attribute, Policy, Tier
from qeguard.integrity.trees.base import Observed, Seen, Tree
from qeguard.integrity.trust import SignatureCount, Trust, count_signers, parse_trust
from qeguard.report import Finding, Location, Severity, TierSummary
from qeguard.rules import RuleId


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    """Policy and trust as read from one place, with the bytes they came from."""

    policy: Policy
    trust: Trust
    policy_bytes: bytes
    trust_bytes: bytes
    label: str  # "HEAD 1a2b3c", "origin/main 1a2b3c", "working tree"


def parse_config(read: Callable[[str], bytes | None], *, label: str) -> Config | None:
    """Policy and trust from a reader (a commit or a tree); None when there is no policy."""
    from qeguard.integrity.policy import parse_policy

    policy_bytes = read(POLICY_PATH)
    if policy_bytes is None:
        return None
    where = f"{POLICY_PATH} ({label})"
    try:
        policy = parse_policy(policy_bytes.decode("utf-8"), source=where)
    except UnicodeDecodeError:
        from qeguard.errors import ConfigError

        raise ConfigError("not UTF-8", where=where) from None
    trust_bytes = read(TRUST_PATH) or b""
    trust = parse_trust(trust_bytes.decode("utf-8", "replace"), source=f"{TRUST_PATH} ({label})")
    _check_trust_tiers(policy, trust)
    return Config(
        policy=policy, trust=trust, policy_bytes=policy_bytes, trust_bytes=trust_bytes, label=label
    )


def _check_trust_tiers(policy: Policy, trust: Trust) -> None:
    # A tier name the policy lacks is almost always a typo that silently leaves a tier
    # short of signers; say so instead of verifying with it ignored.
    from qeguard.errors import ConfigError

    known = {t.name for t in policy.tiers}
    for i, signer in enumerate(trust.signers):
        unknown = sorted(t for t in signer.tiers if t != "*" and t not in known)
        if unknown:
            raise ConfigError(
                f"signer {signer.name!r} names unknown tier(s) "
                f"{', '.join(repr(t) for t in unknown)}",
                where=f"{trust.source}: signers[{i}].tiers",
                hint=f"tiers in the policy: {', '.join(sorted(known))}",
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class TierCheck:
    """The signed state of one tier, before comparing with the tree."""

    tier: Tier
    entries: list[Entry] | None  # None when the list cannot be trusted at all
    payload: Payload | None
    signers: SignatureCount = field(default_factory=SignatureCount)
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    now: datetime
    # Locally a threshold shortfall with at least one valid signature only warns.
    local: bool = False
    # Base payloads (HEAD or the trust ref) for the rollback check, by tier.
    base_payloads: Mapping[str, bytes] = field(default_factory=dict)
    # Restrict the comparison to these paths (the staged ones); None = every path.
    only_paths: frozenset[str] | None = None


def _finding(
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


def sign_hint(tier: str) -> str:
    return f"qeguard sign --tier {tier} --key KEY && git add .qeguard"


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
        kw.setdefault("fix", sign_hint(tier.name))
        return _finding(rule, tier, message, title=title, path=path, **kw)

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
        partial = opts.only_paths is not None and len(opts.only_paths) <= _PARTIAL_MAX
        entries = (
            _entries_for(list_bytes, opts.only_paths or frozenset(), lpath)
            if partial
            else parse_list(list_bytes, source=lpath)
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
    digest = hashlib.sha256(list_bytes).hexdigest()
    count = list_bytes.count(b"\n") if partial else len(entries)
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
    signers = count_signers(envelope, trust, tier.name, opts.now)
    if len(signers) < tier.threshold:
        who = ", ".join(signers.signers) or "nobody trusted"
        uncounted = f"; not counted: {'; '.join(signers.rejected)}" if signers.rejected else ""
        local_warning = opts.local and len(signers) >= 1
        findings.append(
            problem(
                RuleId.SIG_THRESHOLD,
                f"tier {tier.name!r} needs {tier.threshold} distinct trusted signer(s), has "
                f"{len(signers)} ({who}){uncounted}",
                title="Not enough signers",
                path=epath,
                fix=f"another signer of tier {tier.name!r} runs: {sign_hint(tier.name)}",
                severity=Severity.LOW if local_warning else None,
                details={"signers": list(signers.signers), "threshold": tier.threshold},
            )
        )
    if payload.expires_at <= opts.now:
        findings.append(
            problem(
                RuleId.SIG_EXPIRED,
                f"tier {tier.name!r}'s manifest expired at {payload.expires}",
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
    base = opts.base_payloads.get(tier.name)
    if base is not None and base != envelope.payload:
        try:
            base_seq = Payload.from_bytes(base, source="base").sequence
        except EnvelopeError:
            base_seq = 0
        if payload.sequence <= base_seq:
            findings.append(
                problem(
                    RuleId.SIG_ROLLBACK,
                    f"tier {tier.name!r}'s payload changed but its "
                    f"sequence {payload.sequence} is not above the base's {base_seq}",
                    title="Manifest rollback",
                    path=epath,
                    severity=Severity.CRITICAL,
                )
            )
    return TierCheck(
        tier=tier, entries=entries, payload=payload, signers=signers, findings=findings
    )


_SEEN_AS = {Kind.FILE: Seen.FILE, Kind.SYMLINK: Seen.SYMLINK}


# Up to this many paths, a staged check reads only their lines from a tier's list instead
# of parsing all of it (a 100,000-line list costs more than the rest of the hook).
_PARTIAL_MAX = 512


def _entries_for(list_bytes: bytes, paths: frozenset[str], source: str) -> list[Entry]:
    """The entries for `paths` only. The list as a whole is still bound by its digest and
    line count; each returned line is parsed as strictly as by `parse_list`."""
    out: list[Entry] = []
    for path in sorted(paths):
        needle = b" " + quote_path(path).encode("utf-8", "surrogateescape") + b"\n"
        start = 0
        while (hit := list_bytes.find(needle, start)) != -1:
            begin = list_bytes.rfind(b"\n", 0, hit) + 1
            line = list_bytes[begin : hit + len(needle)]
            found = parse_list(line, source=source)
            if found and found[0].path == path:
                out.append(found[0])
                break
            start = hit + 1
    return out


def compare(
    tier: Tier,
    entries: Iterable[Entry],
    assigned: Iterable[str],
    observed: Mapping[str, Observed],
    *,
    exec_bit_meaningful: bool,
) -> list[Finding]:
    """Entries against what the tree holds. `assigned` = tree paths the policy gives this tier."""
    findings: list[Finding] = []
    listed: set[str] = set()
    restore = "qeguard restore {path}  (or re-sign: " + sign_hint(tier.name) + ")"
    for e in entries:
        listed.add(e.path)
        reason = unsafe_path_reason(e.path)
        if reason:
            findings.append(
                _finding(
                    RuleId.INT_PATH,
                    tier,
                    f"manifest entry {e.path!r} is unsafe: {reason}",
                    title="Unsafe manifest path",
                    path=list_path(tier.name),
                    severity=Severity.CRITICAL,
                    fix=sign_hint(tier.name),
                    details={"entry": e.path},
                )
            )
            continue
        seen = observed.get(e.path)
        if seen is None:
            continue  # not asked for (staged-only verification)
        if seen.sha256 == e.sha256 and seen.mode == e.mode and seen.seen is _SEEN_AS[e.kind]:
            continue  # unchanged, the usual case: no attribute can differ
        findings.extend(
            _compare_one(tier, e, seen, exec_bit_meaningful, restore.format(path=e.path))
        )
    for path in assigned:
        if path in listed:
            continue
        seen = observed.get(path)
        if seen is None or seen.seen in (Seen.MISSING, Seen.DIRECTORY):
            continue
        findings.append(
            _finding(
                RuleId.INT_ADDED,
                tier,
                f"{path} matches tier {tier.name!r} but is not in its manifest",
                title="Unsigned protected file",
                path=path,
                fix=sign_hint(tier.name),
            )
        )
    return findings


def _compare_one(
    tier: Tier, e: Entry, seen: Observed, exec_meaningful: bool, fix: str
) -> list[Finding]:
    attrs = tier.attributes
    path = e.path
    if seen.seen is Seen.MISSING:
        return [
            _finding(
                RuleId.INT_MISSING,
                tier,
                f"{path} is listed in tier {tier.name!r} but missing",
                title="Protected file missing",
                path=path,
                fix=fix,
            )
        ]
    if seen.seen is Seen.UNREADABLE:
        return [
            _finding(
                RuleId.INT_UNREADABLE,
                tier,
                f"{path} cannot be read: {seen.error}",
                title="Protected file unreadable",
                path=path,
                fix="fix its permissions, then re-run qeguard verify",
            )
        ]
    want = e.kind.value
    got = seen.seen.value
    if (e.kind is Kind.FILE and seen.seen is not Seen.FILE) or (
        e.kind is Kind.SYMLINK and seen.seen is not Seen.SYMLINK
    ):
        if Attribute.KIND not in attrs and seen.seen in (Seen.FILE, Seen.SYMLINK):
            pass
        else:
            extra = f" ({seen.error})" if seen.error else ""
            return [
                _finding(
                    RuleId.INT_KIND,
                    tier,
                    f"{path} was signed as a {want} but is now a {got}{extra}",
                    title="File kind changed",
                    path=path,
                    fix=fix,
                    details={"signed": want, "found": got},
                )
            ]
    out: list[Finding] = []
    if seen.sha256 != e.sha256 and Attribute.CONTENT in attrs:
        if e.kind is Kind.SYMLINK and seen.seen is Seen.SYMLINK:
            out.append(
                _finding(
                    RuleId.INT_SYMLINK,
                    tier,
                    f"{path} now points to {seen.target!r}",
                    title="Symlink retargeted",
                    path=path,
                    fix=fix,
                )
            )
        else:
            out.append(
                _finding(
                    RuleId.INT_MODIFIED,
                    tier,
                    f"{path} differs from its signed content in tier {tier.name!r}",
                    title="Protected file modified",
                    path=path,
                    fix=fix,
                    details={"signed": e.sha256, "found": seen.sha256},
                )
            )
    if (
        Attribute.EXEC in attrs
        and exec_meaningful
        and e.kind is Kind.FILE
        and seen.seen is Seen.FILE
        and seen.mode != e.mode
    ):
        out.append(
            _finding(
                RuleId.INT_EXEC,
                tier,
                f"{path}'s mode is {seen.mode}, signed {e.mode}",
                title="Executable bit changed",
                path=path,
                fix=f"chmod {'+x' if e.executable else '-x'} {path}  (or re-sign: "
                f"{sign_hint(tier.name)})",
            )
        )
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Result:
    findings: list[Finding]
    tiers: list[TierSummary]
    effective: Config


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
        _finding(
            RuleId.TRUST_CHANGE,
            tier,
            f"policy/trust changed relative to {trusted.label}, but "
            + "; ".join(problems)
            + f"; verifying with the trust from {trusted.label}",
            title="Unapproved trust change",
            path=TRUST_PATH,
            severity=Severity.CRITICAL,
            fix=f"signers trusted at {trusted.label} for tier {tier.name!r} run: "
            f"{sign_hint(tier.name)}",
        )
    ]


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
    observe_ahead = getattr(tree, "observe_ahead", None)
    if observe_ahead is not None:
        observe_ahead(signed_sorted, progress)

    matcher = policy.matcher()
    assigned: dict[str, list[str]] = {t.name: [] for t in policy.tiers}
    paths = tree.candidates() if opts.only_paths is None else sorted(opts.only_paths)
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


__all__ = [
    "CONFIG_PATHS",
    "Config",
    "GuardError",
    "Options",
    "Result",
    "TierCheck",
    "approve_config_change",
    "check_tier",
    "compare",
    "parse_config",
    "verify",
]
