"""`qeguard deps`: scan dependencies against vulnerability data and the [deps] policy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from guard.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "deps",
        help="scan dependencies for known vulnerabilities and policy "
        "violations (offline by default)",
    )
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="requirements or lock files (default: detected in the repository root)",
    )
    p.add_argument("--env", action="store_true", help="scan the installed environment")
    p.add_argument(
        "--online",
        action="store_true",
        help="query pip-audit's online service instead of the offline database",
    )
    p.add_argument(
        "--service",
        choices=("osv", "pypi"),
        default="osv",
        help="online service for --online (default: osv)",
    )
    p.add_argument(
        "--db",
        type=Path,
        default=None,
        help="OSV database (zip or folder) instead of the cached or bundled one",
    )
    add_output_options(p)
    p.add_argument(
        "--fix-suggestions",
        action="store_true",
        help="print the lowest versions that clear all findings",
    )
    p.add_argument(
        "--fix", action="store_true", help="rewrite exact pins in requirements files in place"
    )
    p.add_argument(
        "--target-python",
        default=None,
        help="evaluate environment markers for this Python (e.g. 3.12)",
    )
    p.add_argument(
        "--target-platform",
        default=None,
        choices=("linux", "win32", "darwin"),
        help="evaluate environment markers for this platform",
    )
    p.set_defaults(func=run)


def add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        dest="formats",
        action="append",
        default=None,
        metavar="FMT",
        help="text, json, sarif, markdown, junit or html (repeatable; pair each with --output)",
    )
    p.add_argument(
        "--output",
        dest="outputs",
        action="append",
        default=None,
        metavar="PATH",
        help="file for the preceding --format (default: standard output)",
    )


def output_pairs(args: argparse.Namespace) -> list[tuple[str, Path | None]]:
    """Pair each --format with the --output given after it; unpaired formats go to stdout.

    argparse keeps the two lists separately, so the pairing is by position: the n-th
    --output belongs to the n-th --format, and any extra --format writes to stdout.
    """
    formats: list[str] = args.formats or ["text"]
    outputs: list[Path] = [Path(o) for o in (args.outputs or [])]
    if len(outputs) > len(formats):
        raise UsageError(
            "more --output than --format options", hint="give each --output a --format before it"
        )
    pairs: list[tuple[str, Path | None]] = []
    for i, fmt in enumerate(formats):
        pairs.append((fmt, outputs[i] if i < len(outputs) else None))
    if sum(1 for _, o in pairs if o is None) > 1:
        raise UsageError(
            "only one --format can go to standard output", hint="give the others an --output PATH"
        )
    return pairs


def emit(report: Any, args: argparse.Namespace, console: Any) -> None:
    from guard.report import FORMATS, render, write

    for fmt, out in output_pairs(args):
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
        if out is None:
            console.print(render(report, fmt, color=console.color if fmt == "text" else False))
        else:
            write(report, fmt, out)
            console.info(f"wrote {fmt} report to {out}")


def run(args: argparse.Namespace, console: Any) -> int:
    from guard.deps.interface import TargetEnvironment
    from guard.deps.scan import run_scan
    from guard.workspace import find_workspace, load_policy

    root = (args.repo or find_workspace().root).resolve()
    policy = load_policy(root, required=False)
    target = TargetEnvironment.for_target(args.target_python, args.target_platform)
    paths = [p if p.is_absolute() else Path.cwd() / p for p in args.paths]
    result = run_scan(
        root,
        policy,
        paths=paths,
        env=args.env,
        online=args.online,
        service=args.service,
        db_path=args.db,
        target=target,
    )
    report = result.report
    if report.database and report.database.note:
        console.warn(report.database.note)
    if args.fix_suggestions or args.fix:
        from guard.deps.fix import apply_fixes, describe_suggestions

        for line in describe_suggestions(result):
            console.info(line)
        if args.fix:
            for line in apply_fixes(result, root=root):
                console.info(line)
    emit(report, args, console)
    return report.exit_code
