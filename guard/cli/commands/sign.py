"""`qeguard sign`: rebuild tier manifests from the working tree and sign them."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.cli.progress import Progress
from qeguard.errors import ExitCode, UsageError
from qeguard.integrity.config import parse_config
from qeguard.integrity.gate import base_payloads, open_context, trusted_config, work_tree
from qeguard.integrity.keys import SigningKey, load_signing_key
from qeguard.integrity.layout import POLICY_PATH, find_workspace
from qeguard.integrity.manifest import Payload
from qeguard.integrity.policy import policy_findings
from qeguard.integrity.sign import build_tiers, sign_tier
from qeguard.integrity.trust import tiers_list

KEY_ENV = "QEGUARD_KEY"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sign", help="rebuild manifests from the tree and sign (or co-sign) them")
    p.add_argument(
        "--key",
        type=Path,
        help=f"private key (OpenSSH Ed25519); default ${KEY_ENV} or the only key "
        "made by `qeguard keygen`",
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


def _default_key() -> Path:
    env = os.environ.get(KEY_ENV)
    if env:
        return Path(env)
    from qeguard.cli.commands.keygen import default_key_dir

    folder = default_key_dir()
    keys = sorted(p for p in folder.glob("*") if p.suffix != ".pub") if folder.is_dir() else []
    if len(keys) == 1:
        return keys[0]
    raise UsageError(
        "which key should sign?",
        hint="pass --key PATH (or set QEGUARD_KEY); `qeguard keygen --name NAME` makes one",
    )


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    root = args.repo.resolve() if args.repo else find_workspace().root
    key: SigningKey = load_signing_key(args.key or _default_key(), use_ssh_keygen=args.ssh)
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
    if trust.by_key(key.public) is None:
        console.warn(
            f"key {key.public.keyid} is not in {config.trust.source}; its signature "
            "will not count until `qeguard trust add NAME KEY.pub --tiers ...`"
        )
    # Sequences advance over the base (HEAD), so re-signing can never look like a rollback.
    base_seq: dict[str, int] = {}
    head = ctx.repo.head() if ctx.repo else None
    if head is not None:
        _, read, _ = trusted_config(ctx, tree, None)
        for name, payload in base_payloads(read, config).items():
            try:
                base_seq[name] = Payload.from_bytes(payload, source="HEAD").sequence
            except Exception:  # a broken base manifest must not stop a repair
                continue
    now = datetime.now(UTC)
    with Progress("hashing", stream=console.err) as bar:
        bar.start(0)
        builds = build_tiers(tree, policy, tiers, progress=bar.advance if bar.enabled else None)
    failed = False
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
        line = (
            f"{outcome.tier}: {outcome.action} (sequence {outcome.sequence}, {outcome.count} files)"
        )
        console.print(line + (f" - {outcome.note}" if outcome.note else ""))
        # An explicitly requested tier that this key could not sign is a failure, whether
        # the payload is new ("unsigned") or already there ("unchanged").
        failed |= (
            bool(wanted)
            and outcome.action in ("unsigned", "unchanged")
            and build.tier.threshold > 0
        )
    # Where the policy cannot work; whether a pattern matches anything is known only when
    # every tier was built (a path a pattern matches lands in its tier or an earlier one).
    every = len(builds) == len(policy.tiers)
    listed = [e.path for b in builds for e in b.entries] if every else None
    counts = trust.key_counts([t.name for t in policy.tiers], now)
    for f in policy_findings(policy, counts, listed):
        console.warn(f"{f.message}; {f.fix}")
    console.info("next: git add .qeguard && git commit  (co-signers run qeguard sign too)")
    return ExitCode.USAGE if failed else ExitCode.OK
