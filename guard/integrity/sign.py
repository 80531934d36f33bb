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
    EntryList,
    Payload,
    display_path,
    new_payload,
    unsafe_path_reason,
)
from qeguard.integrity.policy import Policy, Tier
from qeguard.integrity.trees.base import Tree, build_paths
from qeguard.integrity.trees.work import WorkTree
from qeguard.integrity.trust import Trust


@dataclass(frozen=True, kw_only=True, slots=True)
class TierBuild:
    tier: Tier
    list_bytes: bytes
    count: int  # entries (lines) in the list

    @property
    def entries(self) -> EntryList:
        """The list's entries, parsed as they are read."""
        return EntryList(self.list_bytes, count=self.count)


def build_tiers(
    tree: Tree,
    policy: Policy,
    tiers: Sequence[Tier],
    progress: Callable[[int], None] | None = None,
) -> list[TierBuild]:
    """Each tier's list from what the tree holds now: on disk, one walk of the tree (see
    `WorkTree.build`), every candidate file read and hashed. A path that verification
    would reject stops the build (`_refuse_unsafe`)."""
    names, tier_of = [t.name for t in tiers], policy.matcher().tier_of
    if isinstance(tree, WorkTree):
        tree.prepare(whole=True)
        built = tree.build(names, tier_of, progress)
    else:
        built = build_paths(tree, names, tier_of)
    _refuse_unsafe(built.unsafe)
    return [
        TierBuild(tier=t, list_bytes=built.lists[t.name][0], count=built.lists[t.name][1])
        for t in tiers
    ]


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
        count=build.count,
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
                count=build.count,
                # A threshold-0 tier needs no signature: nothing to tell the signer.
                note=_not_trusted(key, tier) if key and tier.threshold > 0 else "",
            )
        message = current.pae
        if any(key.public.verify(s.sig, message) for s in current.signatures):
            return SignOutcome(
                tier=tier.name,
                action="already signed",
                sequence=current_payload.sequence,
                count=build.count,
            )
        signed = current.with_signature(Signature(keyid=key.public.keyid, sig=key.sign(message)))
        atomic_write(env_file, signed.to_bytes())
        return SignOutcome(
            tier=tier.name,
            action="co-signed",
            sequence=current_payload.sequence,
            count=build.count,
        )
    sequence = max(base_sequence, current_payload.sequence if current_payload else 0) + 1
    payload = new_payload(
        tier=tier.name,
        sequence=sequence,
        list_bytes=build.list_bytes,
        count=build.count,
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
        tier=tier.name, action=action, sequence=sequence, count=build.count, note=note
    )


def _not_trusted(key: SigningKey | None, tier: Tier) -> str:
    who = key.public.keyid if key else "this key"
    return (
        f"{who} is not trusted for tier {tier.name!r}; add it with "
        f"`qeguard trust add NAME KEY.pub --tiers {tier.name}`"
    )
