"""Signing: rebuild each tier's list from the tree, then co-sign or start a new payload.

Order of writes: the list first, then the envelope, each replaced atomically. An
interruption between the two leaves a list whose digest the envelope does not bind,
which verifies as invalid (never as valid for unsigned content); running `sign` again
rebuilds both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from qeguard.errors import ConfigError, EnvelopeError
from qeguard.fsutil import atomic_write
from qeguard.integrity.dsse import PAYLOAD_TYPE, Envelope, Signature
from qeguard.integrity.keys import SigningKey
from qeguard.integrity.layout import envelope_path, list_path
from qeguard.integrity.manifest import (
    Entry,
    Payload,
    cycle_collection_paused,
    display_path,
    format_list,
    new_payload,
    unsafe_path_reason,
)
from qeguard.integrity.policy import Policy, Tier
from qeguard.integrity.trees.base import Tree
from qeguard.integrity.trust import Trust


@dataclass(frozen=True, kw_only=True, slots=True)
class TierBuild:
    tier: Tier
    entries: list[Entry]
    list_bytes: bytes


def build_tiers(
    tree: Tree, policy: Policy, tiers: Sequence[Tier], progress: Callable[[int], None] | None = None
) -> list[TierBuild]:
    """Entries for each tier from what the tree holds now."""
    if list_ahead := getattr(tree, "list_ahead", None):
        list_ahead()  # git walks a working tree for untracked files while lists are parsed
    # Most paths stay between two signatures: on a large tree the last signed ones are
    # hashed in the background while git lists the tree.
    observe_ahead = getattr(tree, "observe_ahead", None)
    if observe_ahead is not None:
        observe_ahead(sorted(_signed_paths(tree, tiers)), progress)
    matcher = policy.matcher()
    names = {t.name for t in tiers}
    assigned: dict[str, list[str]] = {t.name: [] for t in tiers}
    for path in tree.candidates():
        name = matcher.tier_of(path)
        if name in names:
            assigned[name].append(path)
    everything = sorted(p for paths in assigned.values() for p in paths)
    _refuse_unsafe(everything)
    if progress is not None:
        observed = tree.observe(everything, progress)  # type: ignore[call-arg]
    else:
        observed = tree.observe(everything)
    out: list[TierBuild] = []
    with cycle_collection_paused():
        for t in tiers:
            entries = [e for p in assigned[t.name] if (e := observed[p].as_entry(p)) is not None]
            out.append(TierBuild(tier=t, entries=entries, list_bytes=format_list(entries)))
    return out


def _refuse_unsafe(paths: Sequence[str]) -> None:
    """Never list a path verification would reject: the one rule (`unsafe_path_reason`)
    decides for both, so every path `sign` writes verifies."""
    for path in paths:
        reason = unsafe_path_reason(path)
        if reason is not None:
            raise ConfigError(
                f"{display_path(path)} cannot be protected here: {reason}",
                where=display_path(path),
                hint="rename it (`git mv`), or narrow the tier's patterns so it is not covered",
            )


def _signed_paths(tree: Tree, tiers: Sequence[Tier]) -> set[str]:
    """The plain, safe paths of the tiers' current lists, read loosely: they only choose
    what to hash early (a wrong one costs a wasted read, never a wrong entry), and a
    full parse would delay the hashing by a quarter second on 100,000 lines."""
    out: set[str] = set()
    for t in tiers:
        data = tree.read(list_path(t.name))
        if data is None:
            continue
        for line in data.decode("utf-8", "surrogateescape").split("\n"):
            # `<64 hex> <6-digit mode> <kind> <path>`; quoted paths are left for later.
            path = line[72:].partition(" ")[2]
            if path and path[0] != '"' and unsafe_path_reason(path) is None:
                out.add(path)
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class SignOutcome:
    tier: str
    action: str  # "co-signed" | "already signed" | "new payload" | "unsigned" | "unchanged"
    sequence: int
    count: int
    note: str = ""


def sign_tier(
    root: Path,
    build: TierBuild,
    policy: Policy,
    trust: Trust,
    key: SigningKey | None,
    *,
    now: datetime,
    base_sequence: int = 0,
    git_commit: str | None = None,
) -> SignOutcome:
    """Write the tier's list and envelope, adding `key`'s signature when it may sign."""
    tier = build.tier
    current: Envelope | None = None
    current_payload: Payload | None = None
    env_file = root / envelope_path(tier.name)
    if env_file.is_file():
        try:
            current = Envelope.from_bytes(env_file.read_bytes(), source=envelope_path(tier.name))
            if current.payload_type == PAYLOAD_TYPE:
                current_payload = Payload.from_bytes(
                    current.payload, source=envelope_path(tier.name)
                )
        except EnvelopeError:
            current = current_payload = None  # rebuilt below
    fresh = new_payload(
        tier=tier.name,
        sequence=1,
        list_bytes=build.list_bytes,
        count=len(build.entries),
        policy_sha256=policy.sha256,
        now=now,
        expires_days=policy.expires_days,
        git_commit=git_commit,
    )
    signer = trust.by_key(key.public) if key else None
    may_sign = key is not None and signer is not None and signer.may_sign(tier.name, now)
    if (
        current is not None
        and current_payload is not None
        and current_payload.binds_same(fresh)
        and current_payload.expires_at > now
    ):
        atomic_write(root / list_path(tier.name), build.list_bytes)
        if key is None or not may_sign:
            return SignOutcome(
                tier=tier.name,
                action="unchanged",
                sequence=current_payload.sequence,
                count=len(build.entries),
                # A threshold-0 tier needs no signature: nothing to tell the signer.
                note=_not_trusted(key, tier) if key and tier.threshold > 0 else "",
            )
        message = current.pae
        if any(key.public.verify(s.sig, message) for s in current.signatures):
            return SignOutcome(
                tier=tier.name,
                action="already signed",
                sequence=current_payload.sequence,
                count=len(build.entries),
            )
        signed = current.with_signature(Signature(keyid=key.public.keyid, sig=key.sign(message)))
        atomic_write(env_file, signed.to_bytes())
        return SignOutcome(
            tier=tier.name,
            action="co-signed",
            sequence=current_payload.sequence,
            count=len(build.entries),
        )
    sequence = max(base_sequence, current_payload.sequence if current_payload else 0) + 1
    payload = new_payload(
        tier=tier.name,
        sequence=sequence,
        list_bytes=build.list_bytes,
        count=len(build.entries),
        policy_sha256=policy.sha256,
        now=now,
        expires_days=policy.expires_days,
        git_commit=git_commit,
    )
    envelope = Envelope(payload_type=PAYLOAD_TYPE, payload=payload.to_bytes())
    note = ""
    if key is not None and may_sign:
        envelope = envelope.with_signature(
            Signature(keyid=key.public.keyid, sig=key.sign(envelope.pae))
        )
        action = "new payload"
    else:
        action = "unsigned"
        if tier.threshold > 0:
            note = _not_trusted(key, tier) if key else "no key given"
    # List first, then the envelope that binds it (see module docstring).
    atomic_write(root / list_path(tier.name), build.list_bytes)
    atomic_write(env_file, envelope.to_bytes())
    return SignOutcome(
        tier=tier.name, action=action, sequence=sequence, count=len(build.entries), note=note
    )


def _not_trusted(key: SigningKey | None, tier: Tier) -> str:
    who = key.public.keyid if key else "this key"
    return (
        f"{who} is not trusted for tier {tier.name!r}; add it with "
        f"`qeguard trust add NAME KEY.pub --tiers {tier.name}`"
    )
