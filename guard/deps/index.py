"""The database's cache index: its PyPI records by package, in one SQLite file.

The first scan against a database (or the `db update`/`db import` that stores it) builds
an index in the user cache folder, keyed by the database's digest. Table `records` has a
row per (package, record): the PEP 503 name and a JSON pair `[record, extras]`, where the
record is its JSON text exactly as the archive holds it (so a build never encodes a
record again) and the extras are what a warm scan would otherwise compute
(`osv.index_extras`). Later scans read only the rows of the packages they look up. JSON
rather than pickle, so a tampered cache file can corrupt a scan's input but never run
code.

Unzipping, decoding and validating each record is most of a build's time, and records
are independent: a large archive is split into equal shares of its members, each indexed
by a worker process into a file of its own, and the shares are then copied into the
index in archive order (by SQLite, without decoding a row).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from qeguard.deps.archive import blobs, check_archive, open_zip, parse, read_member
from qeguard.deps.osv import NormalForms, index_extras, with_extras
from qeguard.errors import DatabaseError
from qeguard.memory import cycle_collection_paused

INDEX_FORMAT = 7
# Archives at least this large are indexed by worker processes (OSV's PyPI export is tens
# of MB); below it, starting the workers costs more than they save.
PARALLEL_BYTES = 16 << 20
MAX_WORKERS = 8
_BATCH = 5000  # rows per executemany

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (name TEXT NOT NULL, pair TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ids (id TEXT NOT NULL, name TEXT NOT NULL)",
)


class SqliteIndex:
    """An index file, opened read-only (or an index built in memory when the cache
    cannot be written); rows are decoded on request."""

    def __init__(self, conn: sqlite3.Connection, *, built: bool = False):
        self._conn = conn
        self.built = built  # True when this process built it (the scan was cold)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self.digest: str = meta["digest"]
        self.format = int(meta["format"])
        self.count = int(meta["count"])
        self.latest_modified: str | None = meta.get("latest_modified") or None
        self.skipped: tuple[str, ...] = tuple(json.loads(meta.get("skipped") or "[]"))

    @classmethod
    def open(cls, path: Path, *, built: bool = False) -> SqliteIndex:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return cls(conn, built=built)
        except (sqlite3.Error, KeyError, ValueError):
            conn.close()
            raise

    def raw_records(self, name: str) -> list[dict[str, Any]]:
        """The package's records, each with the index's extras in place (see
        `osv.with_extras`), in archive order."""
        sql = "SELECT pair FROM records WHERE name = ? ORDER BY rowid"
        return [_decode(pair) for (pair,) in self._conn.execute(sql, (name,))]

    def raw_records_many(self, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for start in range(0, len(names), 500):  # below SQLite's bound-parameter limit
            chunk = names[start : start + 500]
            marks = ",".join("?" * len(chunk))
            # The index's own order (name, then rowid): no sort.
            sql = f"SELECT name, pair FROM records WHERE name IN ({marks}) ORDER BY name, rowid"
            for name, pair in self._conn.execute(sql, chunk):
                out[name].append(_decode(pair))
        return out

    def packages_for_id(self, ident: str) -> list[str]:
        rows = self._conn.execute("SELECT name FROM ids WHERE id = ? ORDER BY rowid", (ident,))
        return list(dict.fromkeys(r[0] for r in rows))

    def package_names(self) -> list[str]:
        sql = "SELECT DISTINCT name FROM records ORDER BY name"
        return [r[0] for r in self._conn.execute(sql)]


def _decode(pair: str | bytes) -> dict[str, Any]:
    record, extras = json.loads(pair)
    return with_extras(record, extras)


# One record as the index takes it: (PyPI package names, ids and aliases, modified, the
# `[record, extras]` pair as JSON text).
Entry = tuple[list[str], list[str], str, str]


def entry(blob: bytes, forms: NormalForms) -> Entry | str | None:
    """A valid record's index entry, None for a record without PyPI packages, or why the
    record is malformed."""
    parsed = parse(blob)
    if isinstance(parsed, str):
        return parsed
    text, data = parsed
    names: list[str] = sorted(
        {
            canonicalize_name(a["package"]["name"])
            for a in data.get("affected") or ()
            if isinstance(a.get("package"), dict)
            and a["package"].get("ecosystem") == "PyPI"
            and a["package"].get("name")
        }
    )
    if not names:
        return None
    ids: list[str] = sorted({data["id"], *(data.get("aliases") or ())})
    modified = str(data.get("modified") or "")
    if not all(_storable(t) for t in (*names, *ids, modified)):
        return "a name, id or `modified` holds an escaped lone surrogate"
    extras = json.dumps(index_extras(data, forms), separators=(",", ":"))
    # The text parsed as exactly one JSON value, so the pair parses to [data, extras].
    pair = f"[{text.strip()},{extras}]"
    return names, ids, modified, pair


def _storable(text: str) -> bool:
    # SQLite stores text as UTF-8; JSON's `\ud800` escape decodes to what UTF-8 cannot hold.
    return text.isascii() or not any("\ud800" <= c <= "\udfff" for c in text)


@dataclass(kw_only=True, slots=True)
class _Stats:
    count: int = 0
    latest: str = ""  # the newest `modified`
    skipped: list[str] = field(default_factory=list)  # `member: reason`

    def add(self, other: _Stats) -> None:
        self.count += other.count
        self.latest = max(self.latest, other.latest)
        self.skipped.extend(other.skipped)


class _Writer:
    """Appends entries to a database's `records` and `ids` tables in batches."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self._records: list[tuple[str, str]] = []
        self._ids: list[tuple[str, str]] = []
        self.stats = _Stats()

    def add(self, where: str, result: Entry | str | None) -> None:
        if isinstance(result, str):
            self.stats.skipped.append(f"{where}: {result}")
            return
        if result is None:
            return
        names, ids, modified, pair = result
        self.stats.count += 1
        if modified > self.stats.latest:
            self.stats.latest = modified
        self._records.extend((n, pair) for n in names)
        self._ids.extend((i, n) for i in ids for n in names)
        if len(self._records) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        self._conn.executemany("INSERT INTO records VALUES (?, ?)", self._records)
        self._conn.executemany("INSERT INTO ids VALUES (?, ?)", self._ids)
        self._records.clear()
        self._ids.clear()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)  # transactions are explicit
    # No journal and no syncs: the file is new and nobody opens it before it is complete
    # (a share is a temp file; the index is synced, then renamed into place).
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    return conn


def _fill_serial(conn: sqlite3.Connection, source: Path) -> _Stats:
    writer = _Writer(conn)
    forms = NormalForms()
    conn.execute("BEGIN")
    for where, blob in blobs(source):
        writer.add(where, entry(blob, forms))
    writer.flush()
    conn.execute("COMMIT")
    return writer.stats


def _index_share(source: Path, share: int, shares: int, out: str) -> _Stats:
    """Index the `share`-th of `shares` equal runs of the archive's members into `out`."""
    conn = _connect(out)
    try:
        for statement in _SCHEMA:
            conn.execute(statement)
        writer = _Writer(conn)
        forms = NormalForms()
        conn.execute("BEGIN")
        with open_zip(source) as zf:
            members = check_archive(zf, str(source))
            size = -(-len(members) // shares)
            for info in members[share * size : (share + 1) * size]:
                where = f"{source}!{info.filename}"
                writer.add(where, entry(read_member(zf, info, source), forms))
        writer.flush()
        conn.execute("COMMIT")
        return writer.stats
    finally:
        conn.close()


_WORKER = (
    "import sys; sys.path.append(sys.argv[1]); import qeguard.deps.index as i; i._worker_main()"
)


def _worker_main() -> None:
    """A worker process: `python -I -c _WORKER HOME PACKAGE SOURCE SHARE SHARES OUT`; its
    share goes into the database file OUT, and one JSON line on stdout says what it found.
    It exits 3, doing nothing, when it did not import the qeguard at PACKAGE."""
    import qeguard

    package, source, share, shares, out = sys.argv[2:7]
    if str(Path(qeguard.__file__).resolve()) != package:
        sys.exit(3)
    try:
        with cycle_collection_paused():
            stats = _index_share(Path(source), int(share), int(shares), out)
    except DatabaseError as exc:
        report: dict[str, Any] = {"error": [exc.message, exc.where, exc.hint]}
    else:
        report = {"count": stats.count, "latest": stats.latest, "skipped": stats.skipped}
    sys.stdout.write("\n" + json.dumps(report) + "\n")


def _worker_count() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_WORKERS))


def _fill_from_workers(
    conn: sqlite3.Connection, source: Path, workers: int, target: str
) -> _Stats | None:
    """The archive indexed by `workers` processes, or None when worker processes cannot
    run here (a frozen application, a worker that failed or was killed): the caller then
    indexes in this process. A DatabaseError in a worker (a damaged member) is raised.
    The first worker writes into `target` (the file of `conn`, which is idle meanwhile),
    the others into temp files beside it, copied into it afterwards.

    Plain `python -c` processes rather than multiprocessing: its spawn method imports the
    caller's main script again in every worker, which a script without a main guard does
    not survive, and fork copies a process that may have threads (a progress bar, a
    test's server)."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    if getattr(sys, "frozen", False) or not sys.executable:
        return None
    import qeguard

    # Isolated (-I): neither the current folder (the repository being scanned) nor
    # PYTHON* variables decide what the worker imports; this qeguard's folder is appended
    # to the path, and the worker checks that it imported this very qeguard.
    package = str(Path(qeguard.__file__).resolve())
    home = str(Path(package).parents[1])
    outs: list[str] = []

    def run(share: int) -> dict[str, Any] | None:
        args = [sys.executable, "-I", "-c", _WORKER, home, package, str(source), str(share)]
        args += [str(workers), outs[share]]
        try:
            proc = subprocess.run(args, capture_output=True, check=False)
            # The last line: anything a site hook printed before it is not ours.
            report = json.loads(proc.stdout.splitlines()[-1]) if proc.returncode == 0 else None
        except (OSError, ValueError, IndexError):
            return None
        return report if isinstance(report, dict) else None

    outs.append(target)
    try:
        for _ in range(1, workers):
            fd, out = tempfile.mkstemp(prefix=".share.", suffix=".tmp", dir=Path(target).parent)
            os.close(fd)
            outs.append(out)
        with ThreadPoolExecutor(workers) as pool:
            reports = list(pool.map(run, range(workers)))
        if any(r is None for r in reports):
            return None
        stats = _Stats()
        for report, out in zip(reports, outs, strict=True):
            assert report is not None
            if "error" in report:
                message, where, hint = report["error"]
                raise DatabaseError(message, where=where, hint=hint)
            stats.add(_Stats(**report))
            if out == target:
                continue
            conn.execute("ATTACH DATABASE ? AS share", (out,))
            conn.execute("BEGIN")
            conn.execute("INSERT INTO records SELECT * FROM share.records ORDER BY rowid")
            conn.execute("INSERT INTO ids SELECT * FROM share.ids ORDER BY rowid")
            conn.execute("COMMIT")
            conn.execute("DETACH DATABASE share")
        return stats
    finally:
        for out in outs[1:]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)


def _build(
    conn: sqlite3.Connection,
    source: Path,
    digest: str,
    *,
    workers: int | None,
    target: str | None,
) -> None:
    """Fill the new database `conn`: in worker processes when the archive is large enough
    and the database is a file (`target`), else in this process."""
    for statement in _SCHEMA:
        conn.execute(statement)
    stats = None
    if target is not None and source.is_file() and source.stat().st_size >= PARALLEL_BYTES:
        workers = _worker_count() if workers is None else workers
        if workers > 1:
            stats = _fill_from_workers(conn, source, workers, target)
    if stats is None:
        conn.execute("DELETE FROM records")  # what the first worker wrote, if any
        conn.execute("DELETE FROM ids")
        stats = _fill_serial(conn, source)
    conn.execute("BEGIN")
    conn.execute("CREATE INDEX records_by_name ON records (name)")
    conn.execute("CREATE INDEX ids_by_id ON ids (id)")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [
            ("format", str(INDEX_FORMAT)),
            ("digest", digest),
            ("count", str(stats.count)),
            ("latest_modified", stats.latest[:10]),
            ("skipped", json.dumps(stats.skipped)),
        ],
    )
    conn.execute("COMMIT")


def build_index(
    source: Path, target: Path | None, *, digest: str, workers: int | None = None
) -> SqliteIndex:
    """Index every PyPI record of `source` (a zip or folder) into `target`, atomically
    (built in a temp file, synced, then renamed); with no target, in memory (the cache
    cannot be written). A zip of at least PARALLEL_BYTES is indexed by `workers` processes
    (default: one per CPU); the index is the same either way."""
    with cycle_collection_paused():
        if target is None:
            conn = _connect(":memory:")
            _build(conn, source, digest, workers=workers, target=None)
            return SqliteIndex(conn, built=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            conn = _connect(tmp)
            try:
                _build(conn, source, digest, workers=workers, target=tmp)
            finally:
                conn.close()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return SqliteIndex.open(target, built=True)
