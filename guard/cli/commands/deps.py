"""`qeguard deps`: scan dependencies against vulnerability data and the [deps] policy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.cli.output import add_output_arguments, emit, output_pairs, render_options
from qeguard.errors import ExitCode


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "deps",
        help="scan dependencies for known vulnerabilities and policy "
        "violations (offline by default)",
    )
    add_input_arguments(p, env_help="scan the installed environment")
    p.add_argument(
        "--online",
        action="store_true",
        help="query pip-audit's online service instead of the offline database, and report "
        "pins behind the latest release on the index ($QEGUARD_PYPI_URL, default PyPI)",
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
    add_output_arguments(p)
    p.add_argument(
        "--sast",
        action="store_true",
        help="also run bandit over the repository's Python sources (QG-SAST-* findings); "
        "needs pip install 'qeguard[sast]'",
    )
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


def add_input_arguments(p: argparse.ArgumentParser, *, env_help: str) -> None:
    """The inputs `deps` and `sbom` share: files to read, or the installed environment."""
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="requirements or lock files (default: detected in the repository root)",
    )
    p.add_argument("--env", action="store_true", help=env_help)


def input_paths(args: argparse.Namespace) -> list[Path]:
    """The positional paths, relative to the current folder (not to -C)."""
    return [p if p.is_absolute() else Path.cwd() / p for p in args.paths]


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    from qeguard.deps.audit import run_scan
    from qeguard.deps.model import TargetEnvironment
    from qeguard.integrity.layout import find_workspace
    from qeguard.integrity.policy import load_policy

    root = (args.repo or find_workspace().root).resolve()
    if args.sast:
        from qeguard.sast import require_bandit

        require_bandit()  # before the scan: a missing extra is a usage error, said at once
    policy = load_policy(root, required=False)
    target = TargetEnvironment.for_target(args.target_python, args.target_platform)
    outputs = output_pairs(args)  # a usage error before the scan, not after
    result = run_scan(
        root,
        policy,
        paths=input_paths(args),
        env=args.env,
        online=args.online,
        service=args.service,
        db_path=args.db,
        target=target,
    )
    report = result.report
    if args.sast:
        import dataclasses

        from qeguard.sast import scan_sources

        sast = scan_sources(root)
        report = dataclasses.replace(report, findings=report.findings + tuple(sast))
    if report.database and report.database.note:
        console.warn(report.database.note)
    if args.fix_suggestions or args.fix:
        from qeguard.deps.fix import apply_fixes, describe_suggestions

        for line in describe_suggestions(result):
            console.info(line)
        if args.fix:
            for line in apply_fixes(result, root=root):
                console.info(line)
    emit(report, outputs, console, render_options(args, console))
    return report.exit_code
