"""Policy and trust parsed from one place (a commit, the index or the working tree), with
the exact bytes they came from. Pure: a reader function in, a `Config` out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qeguard.errors import ConfigError
from qeguard.integrity.layout import POLICY_PATH, TRUST_PATH
from qeguard.integrity.policy import Policy, parse_policy
from qeguard.integrity.trust import Trust, parse_trust


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
