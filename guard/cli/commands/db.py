"""`qeguard db info|import|update`: the offline vulnerability database."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.errors import ExitCode


def add_parser(sub: Any) -> None:
    p = sub.add_parser("db", help="show, import or update the offline vulnerability database")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    info = dbsub.add_parser("info", help="which database scans use, its date and age")
    info.add_argument("--db", type=Path, default=None, help="inspect this zip or folder")
    info.set_defaults(func=run_info)
    imp = dbsub.add_parser("import", help="use a zip or folder of OSV records from now on")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=run_import)
    upd = dbsub.add_parser(
        "update",
        help="download OSV's PyPI all.zip (one round trip when it has not changed)",
    )
    upd.add_argument(
        "--url",
        default=None,
        help="where to download from (default: $QEGUARD_DB_URL, else OSV's PyPI all.zip)",
    )
    upd.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds without data before giving up (default 60)",
    )
    upd.add_argument(
        "--force",
        action="store_true",
        help="download even when the server says the database has not changed",
    )
    upd.set_defaults(func=run_update)
    p.set_defaults(func=run_info, db=None)


def _describe(console: Console, db: Any) -> None:
    from qeguard.deps.database import STALE_DAYS, cache_dir

    age = db.age_days()
    origin = "bundled snapshot" if db.embedded else "stored"
    console.print(f"database: {db.meta.name} ({origin})")
    console.print(f"location: {db.location}")
    console.print(
        f"date:     {db.date or 'unknown'}" + (f" ({age} days old)" if age is not None else "")
    )
    console.print(f"records:  {db.count}")
    if db.meta.source:
        console.print(f"source:   {db.meta.source}")
    if db.meta.checked:
        console.print(f"checked:  {db.meta.checked}")
    if db.meta.license:
        console.print(f"license:  {db.meta.license}")
    console.print(f"cache:    {cache_dir()}")
    if db.skipped:
        console.warn(f"{len(db.skipped)} malformed record(s) were skipped")
    if age is not None and age > STALE_DAYS:
        console.warn(f"the database is older than {STALE_DAYS} days: run `qeguard db update`")


def run_info(args: argparse.Namespace, console: Console) -> ExitCode:
    from qeguard.deps.database import open_database

    _describe(console, open_database(args.db))
    return ExitCode.OK


def _warn_skipped(console: Console, skipped: tuple[str, ...]) -> None:
    for line in skipped[:20]:
        console.warn(f"skipped a malformed record: {line}")
    if len(skipped) > 20:
        console.warn(f"... and {len(skipped) - 20} more malformed record(s)")


def run_import(args: argparse.Namespace, console: Console) -> ExitCode:
    from qeguard.deps.database import install
    from qeguard.errors import UsageError

    if not args.file.exists():
        raise UsageError(f"no such file: {args.file}", hint="give a zip or folder of OSV records")
    done = install(args.file, name=args.file.name, origin=str(args.file.resolve()))
    _warn_skipped(console, done.skipped)
    console.info(f"imported {done.db.count} records from {args.file}")
    _describe(console, done.db)
    return ExitCode.OK


class DownloadBar:
    """The progress of a database download, drawn on a terminal only. It counts MiB:
    per-byte steps would redraw a 30 MB download millions of times."""

    def __init__(self, console: Console, *, delay_s: float = 1.0):
        from qeguard.cli.progress import Progress

        self.bar = Progress(
            "downloading the vulnerability database (MiB)", stream=console.err, delay_s=delay_s
        )
        self.started = False

    def __call__(self, done: int, total: int | None) -> None:
        if not self.started:
            self.bar.start(max((total or 0) >> 20, 0))
            self.started = True
        step = (done >> 20) - self.bar.done
        if step > 0:
            self.bar.advance(step)

    def finish(self) -> None:
        self.bar.finish()


def run_update(args: argparse.Namespace, console: Console) -> ExitCode:
    from qeguard.deps.database import open_database
    from qeguard.deps.update import Limits, database_url, update_database

    url = database_url(args.url)
    console.info(f"downloading {url} ...")
    bar = DownloadBar(console)
    try:
        result = update_database(
            url=url, limits=Limits(timeout=args.timeout), progress=bar, force=args.force
        )
    finally:
        bar.finish()  # the next line starts at column 0, whatever happened
    if not result.changed:
        console.info("the database has not changed since the last download")
        _describe(console, open_database())
        return ExitCode.OK
    assert result.db is not None
    _warn_skipped(console, result.skipped)
    console.info(f"updated: {result.db.count} records ({result.downloaded} bytes)")
    _describe(console, result.db)
    return ExitCode.OK
