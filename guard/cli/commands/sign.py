"""`qeguard sign`: rebuild tier manifests from the working tree and sign them."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qeguard.cli.commands.keygen import find_key, passphrase_prompt
from qeguard.cli.console import Console
from qeguard.errors import ExitCode, UsageError
from qeguard.hints import Hints
from qeguard.integrity.config import parse_config
from qeguard.integrity.gate import open_context, signed_sequences, work_tree
from qeguard.integrity.keys import SigningKey, exposed_private_keys, load_signing_key
from qeguard.integrity.layout import POLICY_PATH, find_workspace
from qeguard.integrity.policy import Tier, policy_findings
from qeguard.integrity.sign import build_tiers, sign_tier
from qeguard.integrity.status import exposed_key_message
from qeguard.integrity.trust import Trust, tiers_list
from qeguard.report import counted

KEY_ENV = "QEGUARD_KEY"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sign", help="rebuild manifests from the tree and sign (or co-sign) them")
    p.add_argument(
        "--key",
        type=Path,
        help="private key (OpenSSH Ed25519): a path, or the name given to `qeguard "
        f"keygen --name`; default ${KEY_ENV} or the only key keygen made",
    )
    p.add_argument(
        "--ssh",
        action="store_true",
        help="sign with `ssh-keygen -Y sign` (keys in ssh-agent or on a token); "
        "--key then names the key or its .pub",
    )
    p.add_argument(
        "--tier",
        action="append",
        default=[],
        help="sign only this tier (repeatable or comma-separated); default all",
    )
    p.set_defaults(func=run)


def _default_key(required: bool = True) -> Path | None:
    env = os.environ.get(KEY_ENV)
    if env:
        return Path(env)
    from qeguard.cli.commands.keygen import default_key_dir

    folder = default_key_dir()
    keys = sorted(p for p in folder.glob("*") if p.suffix != ".pub") if folder.is_dir() else []
    if len(keys) == 1:
        return keys[0]
    if not required:
        return None  # only threshold-0 tiers: recorded, never signed
    found = f" ({len(keys)} keys in {folder})" if keys else ""
    raise UsageError(
        f"which key should sign?{found}",
        hint="pass --key PATH (or set QEGUARD_KEY); `qeguard keygen --name NAME` makes one",
    )


def _day(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d")


def why_not(trust: Trust, key: SigningKey, tier: str, now: datetime) -> str | None:
    """Why `key` may not sign `tier` now, in words; None when it may."""
    signer = trust.by_key(key.public)
    if signer is None:
        return f"key {key.public.keyid} is not trusted at all: no signer in {trust.source} has it"
    if tier not in signer.tiers and "*" not in signer.tiers:
        allowed = ", ".join(sorted(signer.tiers)) or "no tier"
        return f"{signer.name} is trusted for {allowed}, not for tier {tier!r}"
    if signer.valid_before is not None and now >= signer.valid_before:
        return f"{signer.name}'s trust window ended on {_day(signer.valid_before)}"
    if signer.valid_after is not None and now < signer.valid_after:
        return f"{signer.name}'s trust window starts on {_day(signer.valid_after)}"
    return None


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    root = args.repo.resolve() if args.repo else find_workspace().root
    ctx = open_context(root)
    tree = work_tree(ctx)
    config = parse_config(tree.read, label="working tree")
    if config is None:
        raise UsageError(
            "no policy to sign under",
            where=POLICY_PATH,
            hint="run `qeguard init --preset default` first",
        )
    policy, trust = config.policy, config.trust
    wanted = [n for t in args.tier for n in tiers_list(t)]
    tiers = [policy.tier(n) for n in wanted] if wanted else list(policy.tiers)
    # A threshold-0 tier is recorded and hashed, never signed: it needs no key.
    needs_key = any(t.threshold > 0 for t in tiers)
    path = find_key(args.key) if args.key else _default_key(required=needs_key)
    key: SigningKey | None = None
    if path is not None:
        key = load_signing_key(
            path, use_ssh_keygen=args.ssh, prompt=passphrase_prompt(console, path)
        )
    now = datetime.now(UTC)
    hints = Hints.here(root)
    # Which tiers this key may sign, decided before anything is written: a key that can
    # sign nothing it was asked to must leave the manifests as they are.
    refused = {
        t.name: why
        for t in tiers
        if t.threshold > 0 and (why := _refusal(trust, key, t.name, now)) is not None
    }
    if refused and (wanted or len(refused) == _needing_signature(tiers)):
        by_reason: dict[str, list[str]] = {}
        for name, why in refused.items():
            by_reason.setdefault(why, []).append(repr(name))
        reasons = "; ".join(
            f"{'tiers' if len(names) > 1 else 'tier'} {', '.join(names)}: {why}"
            for why, names in by_reason.items()
        )
        raise UsageError(
            f"nothing was signed: {reasons}",
            where=str(path) if path else None,
            hint="a signer trusted now adds the key with `qeguard trust add NAME KEY.pub "
            "--tiers TIERS` and commits it; or sign with a key trusted for these tiers",
        )
    # Sequences advance over HEAD and the trust history, so re-signing can never look
    # like a rollback.
    head = ctx.repo.head() if ctx.repo else None
    base_seq = signed_sequences(ctx, tree) if head is not None else {}
    # A key trusted for core alone signing "every tier" leaves middle to its own signers,
    # untouched (rewriting it unsigned would only discard their pending work).
    todo = [t for t in tiers if t.name not in refused]
    for name, why in refused.items():
        console.result(f"{name}: skipped - {why}")
    with console.progress("hashing") as bar:
        builds = build_tiers(tree, policy, todo, progress=bar if bar.enabled else None)
    if ctx.repo is not None:  # after the walk, which found the candidates git would list
        for rel, tracked in exposed_private_keys(ctx.repo, tree.walked()):
            console.warn(exposed_key_message(rel, tracked=tracked, hints=hints))
    for build in builds:
        outcome = sign_tier(
            root,
            build,
            policy,
            trust,
            key,
            now=now,
            base_sequence=base_seq.get(build.tier.name, 0),
            git_commit=head,
        )
        console.result(
            f"{outcome.tier}: {outcome.action} "
            f"(sequence {outcome.sequence}, {counted(outcome.count, 'file')})"
        )
    # Where the policy cannot work; whether a pattern matches anything is known only when
    # every tier was built (a path a pattern matches lands in its tier or an earlier one).
    every = len(builds) == len(policy.tiers)
    # Lazily: the check stops at the first path each pattern matches.
    listed = (e.path for b in builds for e in b.entries) if every else None
    counts = trust.key_counts([t.name for t in policy.tiers], now)
    for f in policy_findings(policy, counts, listed):
        console.warn(f"{f.message}; {f.fix}")
    console.info(f"next: {hints.commit_config()} && git commit  (co-signers run qeguard sign too)")
    return ExitCode.OK


def _needing_signature(tiers: list[Tier]) -> int:
    return sum(1 for t in tiers if t.threshold > 0)


def _refusal(trust: Trust, key: SigningKey | None, tier: str, now: datetime) -> str | None:
    return "no key given" if key is None else why_not(trust, key, tier, now)
