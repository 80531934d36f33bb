"""`qeguard status`: per-tier signed state, vulnerability data and hooks at a glance."""

from __future__ import annotations

import argparse
import json
from typing import Any

from qeguard.cli.console import Console
from qeguard.cli.output import add_output_arguments, document_outputs, emit_document
from qeguard.errors import ExitCode
from qeguard.hints import Hints
from qeguard.integrity.layout import find_workspace
from qeguard.integrity.status import collect, render_problems, render_text

FORMATS = ("text", "json")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="health at a glance; exit 1 when something needs action")
    p.add_argument(
        "--trust-ref", metavar="REF", help="read policy and trust from this commit (default HEAD)"
    )
    add_output_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    outputs = document_outputs(args, FORMATS)
    root = args.repo.resolve() if args.repo else find_workspace().root
    health = collect(root, trust_ref=args.trust_ref, hints=Hints.here(root))
    emit_document(
        outputs,
        {
            "text": lambda: render_problems(health) if console.quiet else render_text(health),
            "json": lambda: json.dumps(health.to_dict(), indent=2, sort_keys=True),
        },
        console,
    )
    return health.exit_code
