"""`qeguard sbom`: a CycloneDX JSON SBOM of the repository's (or environment's) dependencies,
with the vulnerabilities the same scan finds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from qeguard.cli.commands.deps import add_database_arguments, add_input_arguments, input_paths
from qeguard.cli.console import Console
from qeguard.errors import ExitCode


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sbom",
        help="write a CycloneDX JSON SBOM of the dependencies, with their known vulnerabilities",
    )
    add_input_arguments(p, env_help="describe the installed environment")
    add_database_arguments(p)
    p.add_argument(
        "--output", "-o", type=Path, default=None, help="file to write (default: standard output)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    from qeguard.cli.commands.db import DownloadBar
    from qeguard.deps.audit import run_scan
    from qeguard.deps.sbom import Project, build_sbom, project_of
    from qeguard.fsutil import atomic_write
    from qeguard.integrity.layout import find_workspace
    from qeguard.integrity.policy import load_policy
    from qeguard.rules import RuleId

    root = (args.repo or find_workspace().root).resolve()
    bar = DownloadBar(console)  # drawn only if the scan's refresh downloads
    try:
        result = run_scan(
            root,
            load_policy(root, required=False),
            paths=input_paths(args),
            env=args.env,
            offline=args.offline,
            db_path=args.db,
            progress=bar,
        )
    finally:
        bar.finish()
    if args.env and not input_paths(args):
        v = sys.version_info
        project = Project(
            name=f"python-{v.major}.{v.minor}", version=f"{v.major}.{v.minor}.{v.micro}"
        )
    else:
        project = project_of(root)
    database = result.report.database
    if database is not None and database.note:
        console.warn(database.note)
    text = build_sbom(result.dependencies, project=project, findings=result.report.findings)
    if args.output is None:
        console.print(text)
    else:
        atomic_write(args.output, text.encode("utf-8"))
        vulns = sum(1 for f in result.report.active_findings if f.rule == RuleId.DEP_VULN)
        console.info(
            f"wrote CycloneDX SBOM ({len(result.dependencies)} dependencies, "
            f"{vulns} vulnerability findings) to {args.output}"
        )
    return ExitCode.OK
