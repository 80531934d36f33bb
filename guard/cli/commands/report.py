"""`qeguard report FILE.json`: re-render a saved JSON report in other formats."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.cli.output import add_output_arguments, emit, output_pairs, render_options
from qeguard.errors import ExitCode, GuardError, UsageError
from qeguard.report import Report


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="re-render a saved JSON report (text, json, sarif, markdown, junit, html)",
        description="Re-render a report saved with `--format json`. Repeat --format/--output "
        "to write several formats at once.",
    )
    p.add_argument("file", type=Path, metavar="FILE.json", help="a report saved as JSON")
    add_output_arguments(p)
    p.add_argument("--desc", action="store_true", help="text: show advisory descriptions")
    p.add_argument("--aliases", action="store_true", help="text: show advisory aliases")
    p.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 1 when the saved report's verdict is fail (default: always 0)",
    )
    p.set_defaults(func=run)


def load(path: Path) -> Report:
    """Read a saved report; every way it can be wrong becomes a UsageError (exit 2)."""
    hint = "pass a file written by `qeguard verify|deps|ci --format json --output FILE`"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError("no such report file", where=str(path), hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the report: {exc}", where=str(path), hint=hint) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"not valid JSON: {exc.msg}", where=f"{path}:{exc.lineno}:{exc.colno}", hint=hint
        ) from None
    if not isinstance(data, dict):
        raise UsageError(
            "not a qeguard report (expected a JSON object)", where=str(path), hint=hint
        )
    try:
        return Report.from_dict(data)
    except GuardError as exc:
        exc.where = f"{path}: {exc.where}" if exc.where else str(path)
        raise
    except KeyError as exc:
        raise UsageError(
            f"not a valid qeguard report: missing field {exc.args[0]!r}", where=str(path), hint=hint
        ) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"not a valid qeguard report: {exc}", where=str(path), hint=hint) from None


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    outputs = output_pairs(args)
    report = load(args.file)
    emit(report, outputs, console, render_options(args, console))
    return report.exit_code if args.exit_code else ExitCode.OK
