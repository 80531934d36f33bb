"""`qeguard watch`: report integrity changes as they happen, and optionally undo them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import IO, Any

from qeguard.cli.console import Console
from qeguard.errors import ExitCode, UsageError
from qeguard.integrity.layout import find_workspace
from qeguard.integrity.watch import DEFAULT_RESCAN_S, Watcher, WatchEvent, watch


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
        help="one JSON object per line (the report's finding shape plus `event`, "
        "`time` and `restore`)",
    )
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
    root = args.repo.resolve() if args.repo else find_workspace().root
    watcher = Watcher(root, restore=args.restore)
    log: IO[str] | None = None
    if args.log is not None:
        try:
            log = args.log.open("a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"cannot open the log file: {exc.strerror or exc}", where=str(args.log)
            ) from None

    def emit(event: WatchEvent) -> None:
        line = json.dumps(event.to_dict(), sort_keys=True) if args.json else event.text()
        console.print(line)
        if log is not None:
            log.write(line + "\n")
            log.flush()

    def ready(observer: str) -> None:
        mode = "restoring" if args.restore else "reporting"
        console.info(
            f"watching {root}: {watcher.protected} protected files in tiers "
            f"{', '.join(watcher.tier_names)}; {mode} changes; observer {observer}; "
            f"rescan every {args.rescan:g}s. Ctrl-C stops."
        )

    try:
        # Ctrl-C raises KeyboardInterrupt here; watch() stops the observer on the way out
        # and the CLI turns it into exit code 130.
        watch(watcher, emit, poll=args.poll, rescan_s=args.rescan, ready=ready)
    finally:
        if log is not None:
            log.close()
    return ExitCode.OK
