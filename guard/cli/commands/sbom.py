"""`qeguard sbom`: a CycloneDX JSON SBOM of the repository's (or environment's) dependencies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from qeguard.cli.commands.deps import add_input_arguments, input_paths
from qeguard.cli.console import Console
from qeguard.errors import ExitCode


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sbom", help="write a CycloneDX JSON SBOM of the dependencies")
    add_input_arguments(p, env_help="describe the installed environment")
    p.add_argument(
        "--output", "-o", type=Path, default=None, help="file to write (default: standard output)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    from qeguard.deps import sources
    from qeguard.deps.model import TargetEnvironment
    from qeguard.deps.sbom import build_sbom
    from qeguard.deps.sources.environment import load_environment
    from qeguard.fsutil import atomic_write
    from qeguard.integrity.layout import find_workspace

    root = (args.repo or find_workspace().root).resolve()
    env = TargetEnvironment.current()
    deps = load_environment() if args.env else []
    if args.paths or not args.env:
        deps += sources.load_all(input_paths(args) or sources.detect(root), root=root, env=env)
    text = build_sbom(
        deps,
        project=root.name
        if not args.env
        else f"python-{sys.version_info.major}.{sys.version_info.minor}",
    )
    if args.output is None:
        console.print(text)
    else:
        atomic_write(args.output, text.encode("utf-8"))
        console.info(
            f"wrote CycloneDX SBOM ({sum(1 for d in deps if d.version)} pins) to {args.output}"
        )
    return ExitCode.OK
