"""The command line: parses arguments, prints, and maps every outcome to an exit code.

Exit codes: 0 clean, 1 findings at or above `fail_on`, 2 usage or configuration error,
3 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qeguard
from qeguard.cli.commands import COMMANDS
from qeguard.cli.console import Console
from qeguard.errors import ExitCode, GuardError


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qeguard",
        description="Signed file-integrity manifests and dependency scanning, in one report.",
    )
    parser.add_argument("--version", action="version", version=f"qeguard {qeguard.__version__}")
    parser.add_argument(
        "-C",
        "--repo",
        type=Path,
        default=None,
        help="repository root (default: the git work tree around the current folder)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only print findings")
    # The same options after the command name (`qeguard verify -q`), as users expect.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-C", "--repo", type=Path, default=argparse.SUPPRESS, help="repository root"
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only print findings"
    )
    sub = _with_common(
        parser.add_subparsers(dest="command", metavar="COMMAND", required=True), common
    )
    for name in _modules_for(argv):
        module = importlib.import_module(f"qeguard.cli.commands.{name}")
        module.add_parser(sub)
    return parser


def _with_common(sub: Any, common: argparse.ArgumentParser) -> Any:
    """Every parser `sub` makes takes the common options, and so does every parser its
    own subcommands make (`qeguard trust add ... -q`, `qeguard db update -C DIR`)."""
    add = sub.add_parser

    def add_with_common(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("parents", []).append(common)
        parser_: argparse.ArgumentParser = add(name, **kwargs)
        nest = parser_.add_subparsers
        parser_.add_subparsers = (  # type: ignore[method-assign]
            lambda **kw: _with_common(nest(**kw), common)
        )
        return parser_

    sub.add_parser = add_with_common
    return sub


def _modules_for(argv: Sequence[str] | None) -> Sequence[str]:
    """Only the named command's module when one is named: importing every command pulls
    in pip-audit and friends, which would cost the pre-commit hook about a second."""
    args = list(sys.argv[1:] if argv is None else argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-C", "--repo"):
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        name = arg.replace("-", "_")
        return (name,) if name in COMMANDS else COMMANDS
    return COMMANDS


def _log_internal_error(exc: BaseException) -> Path | None:
    import traceback

    try:
        from platformdirs import user_log_path

        log_dir = user_log_path("qeguard", ensure_exists=True)
        log = log_dir / "qeguard.log"
        with log.open("a", encoding="utf-8") as f:
            f.write(f"qeguard {qeguard.__version__}: {sys.argv!r}\n")
            f.write("".join(traceback.format_exception(exc)))
        return log
    except OSError:
        return None


def _innermost(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the (sub)command the user named: `qeguard trust add` -> trust add's."""
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions:
            return parser
        name = getattr(args, actions[0].dest, None)
        if name not in actions[0].choices:
            return parser
        parser = actions[0].choices[name]


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse would blame the top-level parser and print its usage; the options
        # belong to the command the user typed, so its usage is the helpful one.
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    repo: Path | None = args.repo
    if repo is not None and not repo.is_dir():
        what = "not a folder" if repo.exists() else "no such folder"
        parser.error(f"-C {repo}: {what}")
    return args


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    parser = build_parser(argv)
    try:
        args = _parse(parser, argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    console = console or Console(quiet=args.quiet)
    console.quiet = args.quiet
    try:
        code: int = args.func(args, console)
        return code
    except GuardError as exc:
        console.error(exc.diagnostics())
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:
        log = _log_internal_error(exc)
        where = f"; details in {log}" if log else ""
        console.error(f"internal error: {type(exc).__name__}: {exc}{where}")
        if os.environ.get("QEGUARD_DEBUG"):
            import traceback

            traceback.print_exc()
        return ExitCode.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
