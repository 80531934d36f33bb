"""`qeguard trust add|remove|list`: edit .qeguard/trust.toml."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.cli.output import add_output_arguments, document_outputs, emit_document
from qeguard.errors import ConfigError, ExitCode, KeyFileError, UsageError
from qeguard.fsutil import atomic_write
from qeguard.integrity.keys import PublicKey
from qeguard.integrity.layout import TRUST_PATH, find_workspace
from qeguard.integrity.policy import Policy, load_policy, policy_findings
from qeguard.integrity.trust import Signer, Trust, dump_trust, parse_trust, tiers_list
from qeguard.integrity.trust_file import add_signer, remove_signer

FORMATS = ("text", "json")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("trust", help="manage trusted signers (.qeguard/trust.toml)")
    tsub = p.add_subparsers(dest="trust_command", metavar="ACTION", required=True)
    add = tsub.add_parser("add", help="trust a public key for some tiers")
    add.add_argument("name")
    add.add_argument(
        "pubkey",
        help="OpenSSH public key file, the `ssh-ed25519 ...` line, or the name of a key "
        "made by `qeguard keygen`",
    )
    add.add_argument("--tiers", required=True, help="comma-separated tier names, or *")
    add.add_argument("--valid-after", metavar="DATE", help="ISO date or date-time (UTC)")
    add.add_argument("--valid-before", metavar="DATE", help="ISO date or date-time (UTC)")
    add.add_argument(
        "--replace",
        action="store_true",
        help="replace the key, tiers and window of an existing signer of this name",
    )
    rm = tsub.add_parser("remove", help="stop trusting a signer")
    rm.add_argument("name")
    ls = tsub.add_parser("list", help="list trusted signers")
    add_output_arguments(ls)
    p.set_defaults(func=run)


def _root(args: argparse.Namespace) -> Path:
    return args.repo.resolve() if args.repo else find_workspace().root


def _text(root: Path) -> str:
    path = root / TRUST_PATH
    if not path.exists():
        return dump_trust(Trust())
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", where=TRUST_PATH) from None


def _when(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: not an ISO date ({text!r})", hint="e.g. 2027-01-31") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _stamp(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else None


def _list(args: argparse.Namespace, trust: Trust, console: Console) -> ExitCode:
    outputs = document_outputs(args, FORMATS)

    def text() -> str:
        lines = []
        for s in trust.signers:
            window = ""
            if s.valid_after or s.valid_before:
                window = (
                    f"  valid {_stamp(s.valid_after) or '-'} .. {_stamp(s.valid_before) or '-'}"
                )
            lines.append(f"{s.name}  {s.key.keyid}  tiers: {', '.join(sorted(s.tiers))}{window}")
        return "\n".join(lines)

    def as_json() -> str:
        return json.dumps(
            {
                "schema": "qeguard.trust/v1",
                "source": TRUST_PATH,
                "signers": [
                    {
                        "name": s.name,
                        "keyid": s.key.keyid,
                        "key": s.key.openssh,
                        "tiers": sorted(s.tiers),
                        "valid_after": _stamp(s.valid_after),
                        "valid_before": _stamp(s.valid_before),
                    }
                    for s in trust.signers
                ],
            },
            indent=2,
            sort_keys=True,
        )

    emit_document(outputs, {"text": text, "json": as_json}, console)
    if not trust.signers:
        console.info("no trusted signers yet: qeguard trust add NAME KEY.pub --tiers TIERS")
    return ExitCode.OK


def _read_key(raw: str) -> PublicKey:
    text = raw
    if not text.startswith("ssh-"):
        from qeguard.cli.commands.keygen import find_key

        try:
            text = find_key(Path(raw), suffix=".pub").read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyFileError(f"cannot read the public key: {exc.strerror}", where=raw) from None
    return PublicKey.parse(text, where=raw)


def _check_new(trust: Trust, signer: Signer, *, replace: bool) -> None:
    """Refuse what would silently change who is trusted."""
    same_name = next((s for s in trust.signers if s.name == signer.name), None)
    if same_name is not None and not replace:
        raise UsageError(
            f"a signer named {signer.name!r} is already trusted "
            f"(key {same_name.key.keyid}, tiers {', '.join(sorted(same_name.tiers))})",
            where=TRUST_PATH,
            hint="pass --replace to change its key, tiers and window, or choose another name",
        )
    same_key = next(
        (s for s in trust.signers if s.key.raw == signer.key.raw and s.name != signer.name), None
    )
    if same_key is not None:
        # One key under two names would count as two signers to a reader of the file,
        # and as one to the verifier: a tier would look better covered than it is.
        raise UsageError(
            f"this key is already trusted as {same_key.name!r}",
            where=TRUST_PATH,
            hint=f"one key, one signer: change the tiers of {same_key.name!r} with "
            f"`qeguard trust add {same_key.name} KEY.pub --tiers TIERS --replace`",
        )
    if signer.valid_after and signer.valid_before and signer.valid_after >= signer.valid_before:
        raise UsageError(
            f"the validity window is empty: --valid-after {_stamp(signer.valid_after)} is "
            f"not before --valid-before {_stamp(signer.valid_before)}",
            hint="swap the two dates, or drop one of them",
        )


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    root = _root(args)
    text = _text(root)
    trust = parse_trust(text, source=TRUST_PATH)
    if args.trust_command == "list":
        return _list(args, trust, console)
    if args.trust_command == "remove":
        if not any(s.name == args.name for s in trust.signers):
            raise UsageError(f"no signer named {args.name!r}", where=TRUST_PATH)
        atomic_write(root / TRUST_PATH, remove_signer(text, args.name).encode("utf-8"))
        console.result(f"removed {args.name} from {TRUST_PATH}")
        warn_unreachable(console, load_policy(root, required=False), trust.without(args.name))
        return ExitCode.OK
    key = _read_key(args.pubkey)
    tiers = tiers_list(args.tiers)
    if not tiers:
        raise UsageError("--tiers names no tier", hint="e.g. --tiers core,middle (or * for all)")
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
    _check_new(trust, signer, replace=args.replace)
    new_text = add_signer(text, signer)
    atomic_write(root / TRUST_PATH, new_text.encode("utf-8"))
    verb = "replaced" if any(s.name == args.name for s in trust.signers) else "trusted"
    console.result(f"{verb} {args.name} ({key.keyid}) for tiers {', '.join(tiers)}")
    warn_unreachable(console, policy, trust.with_signer(signer))
    return ExitCode.OK


def warn_unreachable(console: Console, policy: Policy | None, trust: Trust) -> None:
    """Say which tiers no set of the trusted keys can sign (a threshold above them)."""
    if policy is None:
        return
    counts = trust.key_counts([t.name for t in policy.tiers], datetime.now(UTC))
    for f in policy_findings(policy, counts, None):
        console.warn(f"{f.message}; {f.fix}")
