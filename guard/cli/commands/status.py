"""`qeguard status`: per-tier signed state, vulnerability data and hooks at a glance."""

from __future__ import annotations

import argparse
import json
from typing import Any

from qeguard.cli.console import Console
from qeguard.errors import ExitCode
from qeguard.integrity.layout import find_workspace
from qeguard.integrity.status import collect, render_text


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="health at a glance; exit 1 when something needs action")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.add_argument(
        "--trust-ref", metavar="REF", help="read policy and trust from this commit (default HEAD)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    root = args.repo.resolve() if args.repo else find_workspace().root
    health = collect(root, trust_ref=args.trust_ref)
    if args.format == "json":
        console.print(json.dumps(health.to_dict(), indent=2, sort_keys=True))
    else:
        console.print(render_text(health))
    return health.exit_code
