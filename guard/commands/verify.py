"""`qeguard verify`: prove the tree matches what enough trusted people signed."""

from __future__ import annotations

import argparse
from typing import Any

from guard.integrity import run_verify
from guard.report import add_output_arguments, emit, output_pairs
from guard.report.progress import Progress
from guard.workspace import find_workspace


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="check the tree against the signed manifests")
    p.add_argument("--trust-ref", metavar="REF",
                   help="read policy and trust from this commit (CI: the base branch)")
    add_output_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Any) -> int:
    root = args.repo.resolve() if args.repo else find_workspace().root
    outputs = output_pairs(args)
    with Progress("verifying", stream=console.err) as bar:
        bar.start(0)
        report = run_verify(root, trust_ref=args.trust_ref,
                            progress=bar.advance if bar.enabled else None)
    emit(report, outputs, console)
    return report.exit_code
