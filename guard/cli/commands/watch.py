"""`qeguard watch`: report integrity changes as they happen, and optionally undo them."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from qeguard.cli.console import Console
from qeguard.cli.output import add_output_arguments, document_outputs, ensure_folder
from qeguard.errors import ExitCode, UsageError
from qeguard.integrity.layout import find_workspace
from qeguard.integrity.watch import DEFAULT_RESCAN_S, Watcher, WatchEvent, watch
from qeguard.render import STDOUT

FORMATS = ("text", "json")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("watch", help="watch protected files; report (and --restore) changes")
    p.add_argument(
        "--restore",
        action="store_true",
        help="put tampered or deleted protected files back from git objects whose "
        "content matches the signed hash (the tampered copy goes to "
        ".qeguard/quarantine/)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="the same as --format json: one JSON object per line (the report's finding "
        "shape plus `event`, `time` and `restore`)",
    )
    add_output_arguments(p)
    p.add_argument("--log", type=Path, metavar="FILE", help="also append every line to FILE")
    p.add_argument(
        "--poll",
        action="store_true",
        help="poll instead of native events (network folders; automatic when "
        "inotify's limits are reached)",
    )
    p.add_argument(
        "--rescan",
        type=float,
        default=DEFAULT_RESCAN_S,
        metavar="SECONDS",
        help=f"full rescan interval (default {DEFAULT_RESCAN_S:g}); events can be "
        "dropped, the rescan catches what they missed",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    if args.rescan <= 0:
        raise UsageError("--rescan must be a positive number of seconds")
    outputs = [("json", STDOUT)] if args.json and not args.outputs else None
    outputs = outputs or document_outputs(args, FORMATS)
    root = args.repo.resolve() if args.repo else find_workspace().root
    watcher = Watcher(root, restore=args.restore)
    with contextlib.ExitStack() as files:
        sinks: list[tuple[str, Callable[[str], None]]] = []
        for fmt, dest in outputs:
            if dest == STDOUT:
                sinks.append((fmt, console.print))
            else:
                sinks.append((fmt, _line_writer(files, Path(dest), "w", console)))
        if args.log is not None:
            sinks.append((outputs[0][0], _line_writer(files, args.log, "a", console)))

        def emit(event: WatchEvent) -> None:
            for fmt, write in sinks:
                write(
                    json.dumps(event.to_dict(), sort_keys=True) if fmt == "json" else event.text()
                )

        def ready(observer: str) -> None:
            mode = "restoring" if args.restore else "reporting"
            console.info(
                f"watching {root}: {watcher.protected} protected files in tiers "
                f"{', '.join(watcher.tier_names)}; {mode} changes; observer {observer}; "
                f"rescan every {args.rescan:g}s. Ctrl-C stops."
            )

        try:
            watch(watcher, emit, poll=args.poll, rescan_s=args.rescan, ready=ready)
        except KeyboardInterrupt:
            # Ctrl-C is how a watch ends, not an error: watch() has stopped the observer.
            console.info("stopped watching")
            return ExitCode.INTERRUPTED
    return ExitCode.OK


def _line_writer(
    files: contextlib.ExitStack, path: Path, mode: str, console: Console
) -> Callable[[str], None]:
    try:
        ensure_folder(path, console)
        stream: IO[str] = files.enter_context(path.open(mode, encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot open the file: {exc.strerror or exc}", where=str(path)) from None

    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()  # a watcher's log is read while it runs (tail -f)

    return write
