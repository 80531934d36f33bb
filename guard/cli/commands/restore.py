"""`qeguard restore`: put protected files back to their signed content from git objects."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.errors import ExitCode, UsageError
from qeguard.integrity.gate import open_context, work_tree
from qeguard.integrity.layout import find_workspace
from qeguard.integrity.restore import Action, SignedEntry, load_signed, new_stamp, restorer_for


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "restore", help="restore protected files to their signed content from git objects"
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="protected files (or folders holding them) to restore",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="restore every protected file that differs from its signed content",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be done, write nothing")
    p.add_argument(
        "--trust-ref", metavar="REF", help="read policy and trust from this commit (default HEAD)"
    )
    p.set_defaults(func=run)


def _relative(root: Path, base: Path, raw: str) -> str:
    # Not resolve(): the path itself may be a tampered symlink or may not exist.
    full = os.path.normpath(os.path.join(base, raw))
    rel = os.path.relpath(full, root)
    if rel == "." or rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        raise UsageError(f"{raw} is outside the repository", where=str(root))
    return rel.replace(os.sep, "/")


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    if bool(args.paths) == bool(args.all):
        raise UsageError(
            "name the files to restore, or pass --all (not both)",
            hint="qeguard restore src/pkg/core/model.py   or   qeguard restore --all",
        )
    root = args.repo.resolve() if args.repo else find_workspace().root
    # Like `git -C`: with -C, paths are relative to that folder.
    base = root if args.repo else Path.cwd()
    ctx = open_context(root)
    tree = work_tree(ctx)
    state = load_signed(ctx, tree, trust_ref=args.trust_ref)
    stamp = new_stamp()  # one quarantine folder per run
    restorer = restorer_for(ctx, stamp=lambda: stamp)
    for tier, why in state.untrusted.items():
        console.warn(f"tier {tier!r} is not used for restores: {why}")
    wanted: list[SignedEntry] = []
    if args.all:
        wanted = [state.entries[p] for p in sorted(state.entries)]
    else:
        for raw in args.paths:
            rel = _relative(root, base, raw)
            under = [
                state.entries[p]
                for p in sorted(state.entries)
                if p == rel or p.startswith(rel + "/")
            ]
            if not under:
                owner = state.config.policy.matcher().tier_of(rel)
                if owner is not None and owner in state.untrusted:
                    raise UsageError(
                        f"{rel} belongs to tier {owner!r}, whose manifest is not "
                        f"trusted: {state.untrusted[owner]}",
                        where=raw,
                        hint="nothing was written; run `qeguard verify` and "
                        "repair the manifest (or restore it from git) first",
                    )
                raise UsageError(
                    f"{rel} is not a protected file in any trusted manifest",
                    where=raw,
                    hint="`qeguard ls` lists the protected files and their state",
                )
            wanted.extend(under)
    failed = 0
    changed = 0
    for signed in wanted:
        outcome = restorer.restore(signed, dry_run=args.dry_run)
        if outcome.action is Action.CLEAN:
            if not args.all:
                console.info(f"{outcome.path}: {outcome.message}")
            continue
        changed += 1
        if outcome.ok:
            console.print(
                f"{outcome.action.value}: {outcome.path} [{outcome.tier}] ({outcome.message})"
            )
        else:
            failed += 1
            console.print(
                f"{outcome.action.value}: {outcome.path} [{outcome.tier}] ({outcome.message})"
            )
    if changed == 0:
        console.info("nothing to restore: every requested file matches its signed content")
    return ExitCode.FINDINGS if failed else ExitCode.OK
