"""`qeguard trust add|remove|list`: edit .qeguard/trust.toml."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.errors import ConfigError, ExitCode, KeyFileError, UsageError
from qeguard.fsutil import atomic_write
from qeguard.integrity.keys import PublicKey
from qeguard.integrity.layout import TRUST_PATH, find_workspace
from qeguard.integrity.policy import Policy, load_policy, policy_findings
from qeguard.integrity.trust import Signer, Trust, dump_trust, parse_trust, tiers_list


def add_parser(sub: Any) -> None:
    p = sub.add_parser("trust", help="manage trusted signers (.qeguard/trust.toml)")
    tsub = p.add_subparsers(dest="trust_command", metavar="ACTION", required=True)
    add = tsub.add_parser("add", help="trust a public key for some tiers")
    add.add_argument("name")
    add.add_argument("pubkey", help="OpenSSH public key file (or the `ssh-ed25519 ...` line)")
    add.add_argument("--tiers", required=True, help="comma-separated tier names, or *")
    add.add_argument("--valid-after", help="ISO date or date-time (UTC)")
    add.add_argument("--valid-before", help="ISO date or date-time (UTC)")
    rm = tsub.add_parser("remove", help="stop trusting a signer")
    rm.add_argument("name")
    tsub.add_parser("list", help="list trusted signers")
    p.set_defaults(func=run)


def _root(args: argparse.Namespace) -> Path:
    return args.repo.resolve() if args.repo else find_workspace().root


def _load(root: Path) -> Trust:
    path = root / TRUST_PATH
    if not path.exists():
        return Trust()
    return parse_trust(path.read_text(encoding="utf-8"), source=TRUST_PATH)


def _when(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: not an ISO date ({text!r})", hint="e.g. 2027-01-31") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    root = _root(args)
    trust = _load(root)
    if args.trust_command == "list":
        for s in trust.signers:
            window = ""
            if s.valid_after or s.valid_before:
                window = f"  valid {s.valid_after or '-'} .. {s.valid_before or '-'}"
            console.print(f"{s.name}  {s.key.keyid}  tiers: {', '.join(sorted(s.tiers))}{window}")
        if not trust.signers:
            console.info("no trusted signers yet: qeguard trust add NAME KEY.pub --tiers TIERS")
        return ExitCode.OK
    if args.trust_command == "remove":
        if not any(s.name == args.name for s in trust.signers):
            raise UsageError(f"no signer named {args.name!r}", where=TRUST_PATH)
        atomic_write(root / TRUST_PATH, dump_trust(trust.without(args.name)).encode("utf-8"))
        console.print(f"removed {args.name} from {TRUST_PATH}")
        warn_unreachable(console, load_policy(root, required=False), trust.without(args.name))
        return ExitCode.OK
    text = args.pubkey
    if not text.startswith("ssh-"):
        try:
            text = Path(args.pubkey).read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyFileError(
                f"cannot read the public key: {exc.strerror}", where=args.pubkey
            ) from None
    key = PublicKey.parse(text, where=args.pubkey)
    tiers = tiers_list(args.tiers)
    policy = load_policy(root, required=False)
    if policy is not None:
        known = {t.name for t in policy.tiers}
        unknown = [t for t in tiers if t != "*" and t not in known]
        if unknown:
            raise ConfigError(
                f"unknown tier(s) {', '.join(unknown)}",
                where="--tiers",
                hint=f"tiers in the policy: {', '.join(sorted(known))}",
            )
    signer = Signer(
        name=args.name,
        key=key,
        tiers=frozenset(tiers),
        valid_after=_when(args.valid_after, "--valid-after"),
        valid_before=_when(args.valid_before, "--valid-before"),
    )
    atomic_write(root / TRUST_PATH, dump_trust(trust.with_signer(signer)).encode("utf-8"))
    console.print(f"trusted {args.name} ({key.keyid}) for tiers {', '.join(tiers)}")
    warn_unreachable(console, policy, trust.with_signer(signer))
    return ExitCode.OK


def warn_unreachable(console: Console, policy: Policy | None, trust: Trust) -> None:
    """Say which tiers no set of the trusted keys can sign (a threshold above them)."""
    if policy is None:
        return
    counts = trust.key_counts([t.name for t in policy.tiers], datetime.now(UTC))
    for f in policy_findings(policy, counts, None):
        console.warn(f"{f.message}; {f.fix}")
