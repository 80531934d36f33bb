"""`qeguard ci`: verify against the base ref and scan dependencies, in one report."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.cli.output import add_output_arguments, emit, output_pairs, render_options
from qeguard.deps.audit import scan_repository
from qeguard.errors import ExitCode
from qeguard.hints import Hints
from qeguard.integrity.gate import run_verify
from qeguard.integrity.layout import find_workspace
from qeguard.integrity.policy import load_policy
from qeguard.render import github


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ci",
        help="verify (trust from --trust-ref) plus dependency scan; one "
        "report, exit by the policy's fail_on",
    )
    p.add_argument(
        "--trust-root",
        metavar="COMMIT",
        help="the commit trust is walked from (also $QEGUARD_TRUST_ROOT; pin it in CI)",
    )
    p.add_argument(
        "--trust-ref",
        metavar="REF",
        help="the base branch (e.g. refs/remotes/origin/main) for rollback and overrides",
    )
    network = p.add_mutually_exclusive_group()
    network.add_argument(
        "--online",
        action="store_true",
        help="look vulnerabilities up with pip-audit's online service",
    )
    network.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never use the network: no automatic database refresh (also $QEGUARD_OFFLINE=1)",
    )
    p.add_argument("--db", type=Path, help="offline OSV database (zip or folder)")
    p.add_argument("--no-deps", action="store_true", help="skip the dependency scan")
    add_output_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    root = args.repo.resolve() if args.repo else find_workspace().root
    outputs = output_pairs(args)
    # `ci` even without the dependency scan: the header names the command the user ran.
    verified = run_verify(
        root, trust_ref=args.trust_ref, trust_root=args.trust_root, cwd=Path.cwd()
    )
    report = replace(verified, command="ci")
    if not args.no_deps:
        policy = load_policy(root, required=False)
        deps = scan_repository(
            root,
            policy,
            online=args.online,
            offline=args.offline,
            db_path=args.db,
            hints=Hints.here(root),
        )
        report = report.merged(deps)
    options = render_options(args, console)
    emit(report, outputs, console, options)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        # The runner reads workflow commands from stderr too; stdout is the report's alone.
        for line in github.annotations(report):
            console.err.write(line + "\n")
        console.err.flush()
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            github.append_step_summary(report, summary, options)
    return report.exit_code
