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
        help="scan dependencies for known vulnerabilities and policy violations (OSV "
        "database, refreshed when older than a day)",
    )
    add_input_arguments(p, env_help="scan the installed environment")
    p.add_argument(
        "--online",
        action="store_true",
        help="query pip-audit's online service instead of the offline database, and report "
        "pins behind the latest release on the index ($QEGUARD_PYPI_URL, default PyPI)",
    )
    add_database_arguments(p)
    p.add_argument(
        "-s",
        "--service",
        choices=("osv", "pypi"),
        default="osv",
        help="online service for --online (default: osv)",
    )
    add_output_arguments(p)
    p.add_argument(
        "--ignore-vuln",
        action="append",
        default=[],
        metavar="ID",
        help="ignore this advisory (any alias) for this run only; repeatable. Lasting "
        "ignores belong in [deps] ignore, with a reason and an expiry date",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail when any dependency cannot be checked (URL, path, VCS or editable)",
    )
    p.add_argument(
        "--desc",
        action="store_true",
        help="show each advisory's description in the text report",
    )
    p.add_argument(
        "--aliases",
        action="store_true",
        help="show each advisory's aliases (CVE, GHSA, ...) in the text report",
    )
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
        "--fix",
        action="store_true",
        help="apply them: rewrite exact pins in requirements files, and run the project's "
        "locker (uv, poetry, pdm, pipenv) for lock files; the report shows what is left",
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
    p.add_argument(
        "-r",
        "--requirement",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        dest="requirements",
        help="a requirements or lock file to read (like pip's -r); repeatable, and the same "
        "as naming it as an argument",
    )
    p.add_argument("--env", action="store_true", help=env_help)


def add_database_arguments(p: argparse.ArgumentParser) -> None:
    """Where the vulnerability data comes from: `deps` and `sbom` share these."""
    p.add_argument(
        "--db",
        type=Path,
        default=None,
        help="OSV database (zip or folder) instead of the cached or bundled one",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never use the network: no automatic database refresh (also $QEGUARD_OFFLINE=1)",
    )


def input_paths(args: argparse.Namespace) -> list[Path]:
    """The files named as arguments or with -r, relative to the current folder (not -C)."""
    named = [*args.paths, *getattr(args, "requirements", [])]
    return [p if p.is_absolute() else Path.cwd() / p for p in named]


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    import dataclasses

    from qeguard.cli.commands.db import DownloadBar
    from qeguard.deps.audit import ScanResult, replace_report, run_scan
    from qeguard.deps.model import TargetEnvironment
    from qeguard.hints import Hints
    from qeguard.integrity.layout import find_workspace
    from qeguard.integrity.policy import load_policy

    root = (args.repo or find_workspace().root).resolve()
    if args.sast:
        from qeguard.sast import require_bandit

        require_bandit()  # before the scan: a missing extra is a usage error, said at once
    policy = load_policy(root, required=False)
    target = TargetEnvironment.for_target(args.target_python, args.target_platform)
    outputs = output_pairs(args)  # a usage error before the scan, not after

    bar = DownloadBar(console)  # drawn only if the scan's refresh downloads

    def scan() -> ScanResult:
        return run_scan(
            root,
            policy,
            paths=input_paths(args),
            env=args.env,
            online=args.online,
            offline=args.offline,
            service=args.service,
            db_path=args.db,
            target=target,
            ignore_vulns=args.ignore_vuln,
            strict=args.strict,
            progress=bar,
            hints=Hints.here(root),
        )

    try:
        result = scan()
    finally:
        bar.finish()
    if args.fix_suggestions or args.fix:
        from qeguard.deps.fix import apply_fixes, describe_suggestions

        for line in describe_suggestions(result):
            console.info(line)
        if args.fix:
            outcome = apply_fixes(result, root=root, hints=Hints.here(root))
            for line in outcome.messages:
                console.info(line)
            if outcome.changed:
                result = scan()  # the report shows what is left after the fixes
            result = replace_report(result, fixes=outcome.fixes)
    report = result.report
    if args.sast:
        from qeguard.sast import scan_sources

        sast = scan_sources(root)
        inputs = report.inputs
        if inputs is not None:
            inputs = dataclasses.replace(inputs, services=(*inputs.services, "bandit"))
        report = dataclasses.replace(report, findings=report.findings + tuple(sast), inputs=inputs)
    if report.database and report.database.note:
        console.warn(report.database.note)
    emit(report, outputs, console, render_options(args, console))
    return report.exit_code
