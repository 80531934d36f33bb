"""`qeguard db info|import|update`: the offline vulnerability database."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.errors import ExitCode

OSV_PYPI_ZIP = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("db", help="show, import or update the offline vulnerability database")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    info = dbsub.add_parser("info", help="which database scans use, its date and age")
    info.add_argument("--db", type=Path, default=None, help="inspect this zip or folder")
    info.set_defaults(func=run_info)
    imp = dbsub.add_parser("import", help="use a zip or folder of OSV records from now on")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=run_import)
    upd = dbsub.add_parser("update", help="download OSV's PyPI all.zip (needs the network)")
    upd.add_argument("--url", default=OSV_PYPI_ZIP, help=argparse.SUPPRESS)
    upd.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    upd.set_defaults(func=run_update)
    p.set_defaults(func=run_info, db=None)


def _describe(console: Console, db: Any) -> None:
    from qeguard.deps.database import STALE_DAYS, cache_dir

    age = db.age_days()
    origin = "bundled snapshot" if db.embedded else "imported"
    console.print(f"database: {db.meta.name} ({origin})")
    console.print(f"location: {db.location}")
    console.print(
        f"date:     {db.date or 'unknown'}" + (f" ({age} days old)" if age is not None else "")
    )
    console.print(f"records:  {db.count}")
    if db.meta.source:
        console.print(f"source:   {db.meta.source}")
    if db.meta.license:
        console.print(f"license:  {db.meta.license}")
    console.print(f"cache:    {cache_dir()}")
    if age is not None and age > STALE_DAYS:
        console.warn(f"the database is older than {STALE_DAYS} days: run `qeguard db update`")


def run_info(args: argparse.Namespace, console: Console) -> ExitCode:
    from qeguard.deps.database import open_database

    _describe(console, open_database(args.db))
    return ExitCode.OK


def run_import(args: argparse.Namespace, console: Console) -> ExitCode:
    from qeguard.deps.database import install
    from qeguard.errors import ExitCode, UsageError

    if not args.file.exists():
        raise UsageError(f"no such file: {args.file}", hint="give a zip or folder of OSV records")
    db = install(args.file, name=args.file.name, origin=str(args.file.resolve()))
    console.info(f"imported {db.count} records from {args.file}")
    _describe(console, db)
    return ExitCode.OK


def run_update(args: argparse.Namespace, console: Console) -> ExitCode:
    import requests
    from qeguard.deps.database import install
    from qeguard.errors import DatabaseError

    console.info(f"downloading {args.url} ...")
    try:
        response = requests.get(args.url, timeout=args.timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise DatabaseError(
            f"cannot download the database: {exc}",
            hint="check the network; offline, fetch all.zip elsewhere and run "
            "`qeguard db import all.zip` (scans keep using the current database)",
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / "all.zip"
        zip_path.write_bytes(response.content)
        db = install(zip_path, name="OSV PyPI (all.zip)", origin=args.url)
    console.info(f"updated: {db.count} records")
    _describe(console, db)
    return ExitCode.OK
