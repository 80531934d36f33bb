"""trust.toml: who may sign which tier, and counting distinct trusted signers."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from qeguard.errors import ConfigError
from qeguard.integrity.dsse import Envelope
from qeguard.integrity.keys import PublicKey, signature_key_type


@dataclass(frozen=True, kw_only=True, slots=True)
class Signer:
    name: str
    key: PublicKey
    tiers: frozenset[str]
    valid_after: datetime | None = None
    valid_before: datetime | None = None

    def may_sign(self, tier: str, now: datetime) -> bool:
        if tier not in self.tiers and "*" not in self.tiers:
            return False
        if self.valid_after and now < self.valid_after:
            return False
        return not (self.valid_before and now >= self.valid_before)


@dataclass(frozen=True, kw_only=True, slots=True)
class Trust:
    signers: tuple[Signer, ...] = ()
    source: str = ".qeguard/trust.toml"

    def signers_for(self, tier: str, now: datetime) -> list[Signer]:
        return [s for s in self.signers if s.may_sign(tier, now)]

    def key_counts(self, tiers: Iterable[str], now: datetime) -> dict[str, int]:
        """How many distinct keys may sign each tier now (what a threshold can reach)."""
        return {t: len({s.key.raw for s in self.signers_for(t, now)}) for t in tiers}

    def by_key(self, key: PublicKey) -> Signer | None:
        for s in self.signers:
            if s.key.raw == key.raw:
                return s
        return None

    def with_signer(self, signer: Signer) -> Trust:
        others = tuple(s for s in self.signers if s.name != signer.name)
        return Trust(signers=(*others, signer), source=self.source)

    def without(self, name: str) -> Trust:
        return Trust(signers=tuple(s for s in self.signers if s.name != name), source=self.source)


@dataclass(frozen=True, kw_only=True, slots=True)
class SignatureCount:
    """Who validly signed, and what did not count and why (for messages, not for trust)."""

    signers: tuple[str, ...] = ()
    rejected: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.signers)


def count_signers(envelope: Envelope, trust: Trust, tier: str, now: datetime) -> SignatureCount:
    """Distinct trusted keys allowed for `tier` whose signature verifies over the PAE.

    The keyid is only a hint: every allowed key is tried against every signature (the
    hinted one first), and a key counts once however many signatures (or keyids) name
    it. The work is bounded: the envelope parser caps the number of signatures, a
    signature seen twice is verified once, and a key already counted is not tried again.
    """
    message = envelope.pae
    allowed = trust.signers_for(tier, now)
    others = [s for s in trust.signers if s not in allowed]
    counted: dict[bytes, str] = {}
    rejected: list[str] = []
    seen: set[bytes] = set()
    for sig in envelope.signatures:
        if sig.sig in seen:
            continue
        seen.add(sig.sig)
        pending = [s for s in allowed if s.key.raw not in counted]
        pending.sort(key=lambda s: s.key.keyid != sig.keyid)  # the hinted key first
        match = next((s for s in pending if s.key.verify(sig.sig, message)), None)
        if match is not None:
            counted[match.key.raw] = match.name
            continue
        if any(s.key.raw in counted and s.key.keyid == sig.keyid for s in allowed):
            continue  # a second signature by a key already counted
        other = next((s for s in others if s.key.verify(sig.sig, message)), None)
        if other is not None:
            rejected.append(f"{other.name} (not trusted for tier {tier!r} now)")
        elif (kind := signature_key_type(sig.sig)) is not None:
            rejected.append(f"keyid {sig.keyid or '?'} (made with an unsupported {kind} key)")
        else:
            rejected.append(f"keyid {sig.keyid or '?'} (unknown key or bad signature)")
    return SignatureCount(signers=tuple(counted.values()), rejected=tuple(rejected))


def parse_trust(text: str, *, source: str) -> Trust:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}", where=source) from None
    extra = set(doc) - {"signers"}
    if extra:
        raise ConfigError(
            f"unknown key(s) {', '.join(sorted(extra))}",
            where=source,
            hint="trust.toml holds only [[signers]] tables",
        )
    raw = doc.get("signers", [])
    if not isinstance(raw, list):
        raise ConfigError("`signers` must be an array of tables ([[signers]])", where=source)
    signers: list[Signer] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        where = f"{source}: signers[{i}]"
        if not isinstance(item, dict):
            raise ConfigError("must be a table", where=where)
        bad = set(item) - {"name", "key", "tiers", "valid_after", "valid_before"}
        if bad:
            raise ConfigError(f"unknown key(s) {', '.join(sorted(bad))}", where=where)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("`name` must be a non-empty string", where=f"{where}.name")
        if name in names:
            raise ConfigError(f"duplicate signer {name!r}", where=f"{where}.name")
        names.add(name)
        key_line = item.get("key")
        if not isinstance(key_line, str):
            raise ConfigError("`key` must be an OpenSSH public key line", where=f"{where}.key")
        key = PublicKey.parse(key_line, where=f"{where}.key")
        tiers = item.get("tiers", [])
        if not isinstance(tiers, list) or not all(isinstance(t, str) for t in tiers):
            raise ConfigError("`tiers` must be a list of tier names", where=f"{where}.tiers")
        signers.append(
            Signer(
                name=name,
                key=key,
                tiers=frozenset(tiers),
                valid_after=_when(item.get("valid_after"), f"{where}.valid_after"),
                valid_before=_when(item.get("valid_before"), f"{where}.valid_before"),
            )
        )
    return Trust(signers=tuple(signers), source=source)


def _when(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ConfigError(
        "must be a TOML date or date-time (2026-01-31 or 2026-01-31T00:00:00Z)", where=where
    )


def dump_trust(trust: Trust) -> str:
    """TOML text for trust.toml (strings escaped as TOML basic strings)."""
    out = [
        "# Trusted signers. Changing this file needs the strictest tier's threshold of",
        "# signatures from the signers listed here before the change.",
        "",
    ]
    for s in sorted(trust.signers, key=lambda s: s.name):
        out.append("[[signers]]")
        out.append(f"name = {_q(s.name)}")
        out.append(f"key = {_q(s.key.openssh)}")
        out.append("tiers = [" + ", ".join(_q(t) for t in sorted(s.tiers)) + "]")
        if s.valid_after:
            out.append(f"valid_after = {_ts(s.valid_after)}")
        if s.valid_before:
            out.append(f"valid_before = {_ts(s.valid_before)}")
        out.append("")
    return "\n".join(out)


def _q(text: str) -> str:
    # JSON string escapes are valid TOML, except that TOML also forbids a raw DEL.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tiers_list(text: str) -> Sequence[str]:
    return [t.strip() for t in text.split(",") if t.strip()]
