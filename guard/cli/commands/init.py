"""`qeguard init`: write .qeguard/policy.toml (from a preset) and an empty trust.toml."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.errors import ExitCode, UsageError
from qeguard.fsutil import atomic_write
from qeguard.integrity.layout import (
    POLICY_PATH,
    QEGUARD_DIR,
    TRUST_PATH,
    find_workspace,
    reject_custom_location,
)
from qeguard.integrity.policy import PRESETS, parse_policy
from qeguard.integrity.trust import Trust, dump_trust
from qeguard.integrity.trust_file import keep_tiers

_POLICY_TEMPLATE = """\
# qeguard policy. Tiers come from the {preset!r} preset (see `qeguard init --show {preset}`);
# override a tier by name, e.g.:
#   [[tiers]]
#   name = "core"
#   threshold = 3
extends = "{preset}"
"""

# The manifests must keep LF line ends on every platform (their digest is signed), and
# the quarantine holds tampered copies that must never be committed.
_GITATTRIBUTES = "manifests/* -text\n"
_GITIGNORE = "quarantine/\n"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("init", help="create .qeguard/policy.toml and trust.toml from a preset")
    p.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="policy preset to extend (default: default)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing policy")
    p.add_argument(
        "--show", metavar="PRESET", choices=PRESETS, help="print a preset's full policy and exit"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    if args.show:
        from qeguard.integrity.policy import preset_text

        console.print(preset_text(args.show))
        return ExitCode.OK
    root = args.repo.resolve() if args.repo else find_workspace().root
    reject_custom_location(root)
    rel = POLICY_PATH
    policy_file = root / rel
    if policy_file.exists() and not args.force:
        raise UsageError(
            "a policy already exists", where=rel, hint="edit it, or pass --force to replace it"
        )
    text = _POLICY_TEMPLATE.format(preset=args.preset)
    policy = parse_policy(text, source=rel)  # proves the template is valid before writing
    trust_file = root / TRUST_PATH
    trust_text: str | None = None
    dropped: dict[str, list[str]] = {}
    if trust_file.exists():
        # Signers of tiers the new preset lacks would make every command fail: keep the
        # signers (and the file's comments), drop only those tier names.
        trust_text, dropped = keep_tiers(
            trust_file.read_text(encoding="utf-8"), {t.name for t in policy.tiers}
        )
    atomic_write(policy_file, text.encode("utf-8"))
    if trust_text is None:
        atomic_write(trust_file, dump_trust(Trust()).encode("utf-8"))
        wrote = f"{rel} and {TRUST_PATH}"
    elif dropped:
        atomic_write(trust_file, trust_text.encode("utf-8"))
        wrote = f"{rel} and updated {TRUST_PATH}"
    else:
        wrote = f"{rel} (kept {TRUST_PATH})"
    for name, content in ((".gitattributes", _GITATTRIBUTES), (".gitignore", _GITIGNORE)):
        target = root / QEGUARD_DIR / name
        if not target.exists():
            atomic_write(target, content.encode("utf-8"))
    tiers = ", ".join(
        f"{t.name} (threshold {t.threshold}, {t.on_change.value})" for t in policy.tiers
    )
    console.result(f"wrote {wrote} (preset {args.preset}: {tiers})")
    for signer, gone in dropped.items():
        console.warn(
            f"signer {signer!r} was trusted for {', '.join(repr(t) for t in gone)}, which the "
            f"{args.preset} preset does not have: {TRUST_PATH} no longer lists them for it "
            "(`qeguard trust add NAME KEY.pub --tiers TIERS --replace` chooses others)"
        )
    console.info(
        "next: qeguard keygen --name NAME, qeguard trust add NAME KEY.pub "
        "--tiers TIERS, qeguard sign"
    )
    return ExitCode.OK


__all__ = ["Path", "add_parser", "run"]
