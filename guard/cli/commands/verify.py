"""`qeguard verify`: prove the tree matches what enough trusted people signed."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.cli.output import add_output_arguments, emit, output_pairs, render_options
from qeguard.errors import ExitCode, UsageError
from qeguard.integrity.gate import open_context, run_verify
from qeguard.integrity.layout import find_workspace
from qeguard.integrity.override import ENV as OVERRIDE_ENV
from qeguard.report import Override


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="check the tree against the signed manifests")
    p.add_argument(
        "--trust-ref",
        metavar="REF",
        help="read policy and trust from this commit (CI: the base branch)",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--staged",
        action="store_true",
        help="check the staged index, not the working tree, and only what is "
        "staged (the pre-commit hook)",
    )
    what.add_argument(
        "--commit", metavar="REV", help="check the files of this commit (the pre-push hook)"
    )
    p.add_argument(
        "--override",
        metavar="REASON",
        help=f"emergency override (also ${OVERRIDE_ENV}): lets a blocked change "
        "through locally and records who, when and why; CI reports it",
    )
    p.add_argument(
        "--message-file",
        type=Path,
        metavar="FILE",
        help="the commit message being made (commit-msg hook): a "
        "`Qeguard-Override: REASON` trailer there counts as an override",
    )
    p.add_argument(
        "--local",
        action="store_true",
        default=None,
        help="local relaxations even with --trust-ref: a threshold shortfall "
        "with at least one valid signature only warns, overrides pass",
    )
    add_output_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    root = args.repo.resolve() if args.repo else find_workspace().root
    outputs = output_pairs(args)
    reason = args.override or os.environ.get(OVERRIDE_ENV, "").strip() or None
    overrides: list[Override] = []
    if reason is not None:
        ctx = open_context(root)
        who = ctx.repo.user() if ctx.repo else os.environ.get("USER", "unknown")
        overrides.append(
            Override(reason=reason, who=who, when=datetime.now(UTC).isoformat(timespec="seconds"))
        )
    message = None
    if args.message_file is not None:
        try:
            message = args.message_file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UsageError(
                f"cannot read the commit message: {exc.strerror}", where=str(args.message_file)
            ) from None
    with console.progress("verifying") as bar:
        report = run_verify(
            root,
            trust_ref=args.trust_ref,
            staged=args.staged,
            rev=args.commit,
            local=args.local,
            overrides=overrides,
            message=message,
            cwd=Path.cwd(),
            progress=bar if bar.enabled and not (args.staged or args.commit) else None,
        )
    emit(report, outputs, console, render_options(args, console))
    return report.exit_code
