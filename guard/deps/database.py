"""The offline OSV database: a zip or folder of OSV records, indexed once per database.

The first scan against a database groups its records by PEP 503 package name into an
index in the user cache folder, keyed by the database's digest: one SQLite file (stdlib
`sqlite3`) with a row of JSON records per package. Later scans read only the rows of the
packages they look up, so a warm scan of a few hundred pins touches a small part of the
index instead of loading and decoding all of it. JSON rows rather than pickle, so a
tampered cache file can corrupt a scan's input but never run code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from packaging.utils import canonicalize_name
from qeguard.deps.osv import Record, index_form, parse_record, validate_record
from qeguard.errors import DatabaseError
from qeguard.fsutil import atomic_write
from qeguard.report import DatabaseInfo

INDEX_FORMAT = 6
STALE_DAYS = 30
# Bounds on an archive, whoever made it: real OSV records are a few kB (the largest
# PyPI record is about 200 kB) and OSV's PyPI export has tens of thousands of them.
MAX_RECORD_BYTES = 8 << 20
MAX_MEMBERS = 2_000_000
MAX_TOTAL_BYTES = 8 << 30
EMBEDDED_ZIP = "pypa-advisory-db-2024-10-10.osv.zip"
EMBEDDED_META = "pypa-advisory-db-2024-10-10.json"
USER_DB = "pypi-osv.zip"
USER_META = "pypi-osv.json"


def cache_dir() -> Path:
    """`$QEGUARD_CACHE_DIR`, else the platform's user cache folder for qeguard."""
    override = os.environ.get("QEGUARD_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_path

    return user_cache_path("qeguard")


def embedded_path() -> Path:
    return Path(str(resources.files("qeguard.data") / EMBEDDED_ZIP))


def user_db_path() -> Path:
    return cache_dir() / "db" / USER_DB


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseMeta:
    """What `db import`/`db update` recorded beside the stored database."""

    name: str
    date: str | None  # YYYY-MM-DD: when the data was current
    source: str | None = None
    license: str | None = None
    # The download's validators, for a conditional request next time.
    etag: str | None = None
    last_modified: str | None = None
    # When the data was last confirmed current (downloaded, or answered 304), RFC 3339.
    checked: str | None = None
    # The stored zip's digest with the size and mtime it had, so a warm scan need not
    # hash a large archive again.
    sha256: str | None = None
    size: int | None = None
    mtime_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "date": self.date,
            "source": self.source,
            "license": self.license,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "checked": self.checked,
            "sha256": self.sha256,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
        }

    def checked_at(self) -> datetime | None:
        if not self.checked:
            return None
        try:
            when = datetime.fromisoformat(self.checked)
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=UTC)


def _read_meta(path: Path) -> DatabaseMeta | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    def number(key: str) -> int | None:
        value = data.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return DatabaseMeta(
        name=text("name") or path.stem,
        date=text("date"),
        source=text("source"),
        license=text("license"),
        etag=text("etag"),
        last_modified=text("last_modified"),
        checked=text("checked") or text("imported"),
        sha256=text("sha256"),
        size=number("size"),
        mtime_ns=number("mtime_ns"),
    )


def user_meta_path() -> Path:
    return user_db_path().with_name(USER_META)


def read_user_meta() -> DatabaseMeta | None:
    """The stored database's metadata, or None when no database is stored."""
    if not user_db_path().is_file():
        return None
    return _read_meta(user_meta_path())


def write_user_meta(meta: DatabaseMeta) -> None:
    atomic_write(user_meta_path(), json.dumps(meta.to_dict(), indent=2).encode())


class PackageIndex(Protocol):
    """Where an `OsvDatabase` gets raw records: the index in memory (just built) or on disk."""

    @property
    def count(self) -> int: ...

    @property
    def latest_modified(self) -> str | None: ...

    def raw_records(self, name: str) -> list[dict[str, Any]]: ...

    def raw_records_many(self, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]: ...

    @property
    def skipped(self) -> tuple[str, ...]: ...

    def packages_for_id(self, ident: str) -> list[str]: ...

    def package_names(self) -> list[str]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryIndex:
    """The index as `build_index` returns it, used by the scan that built it."""

    packages: dict[str, list[dict[str, Any]]]
    ids: dict[str, list[str]]
    count: int
    latest_modified: str | None
    # `member: reason` for every record that was skipped as malformed.
    skipped: tuple[str, ...] = ()

    def raw_records(self, name: str) -> list[dict[str, Any]]:
        return self.packages.get(name, [])

    def raw_records_many(self, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        return {n: self.packages.get(n, []) for n in names}

    def packages_for_id(self, ident: str) -> list[str]:
        return self.ids.get(ident, [])

    def package_names(self) -> list[str]:
        return sorted(self.packages)


class SqliteIndex:
    """The index file in the cache, opened read-only; rows are decoded on request."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self.digest: str = meta["digest"]
        self.format = int(meta["format"])
        self.count = int(meta["count"])
        self.latest_modified: str | None = meta.get("latest_modified") or None
        self.skipped: tuple[str, ...] = tuple(json.loads(meta.get("skipped") or "[]"))

    @classmethod
    def open(cls, path: Path) -> SqliteIndex:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return cls(conn)
        except (sqlite3.Error, KeyError, ValueError):
            conn.close()
            raise

    def raw_records(self, name: str) -> list[dict[str, Any]]:
        row = self._conn.execute("SELECT records FROM packages WHERE name = ?", (name,)).fetchone()
        if row is None:
            return []
        records: list[dict[str, Any]] = json.loads(row[0])
        return records

    def raw_records_many(self, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for start in range(0, len(names), 500):  # below SQLite's bound-parameter limit
            chunk = names[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT name, records FROM packages WHERE name IN ({marks})"
            for name, blob in self._conn.execute(sql, chunk):
                out[name] = json.loads(blob)
        return out

    def packages_for_id(self, ident: str) -> list[str]:
        rows = self._conn.execute("SELECT name FROM ids WHERE id = ?", (ident,)).fetchall()
        return [r[0] for r in rows]

    def package_names(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT name FROM packages ORDER BY name")]


def write_index(index: MemoryIndex, digest: str, target: Path) -> None:
    """Write the index to `target` atomically: built in a temp file, then renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        with conn:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("CREATE TABLE packages (name TEXT PRIMARY KEY, records TEXT NOT NULL)")
            conn.execute("CREATE TABLE ids (id TEXT NOT NULL, name TEXT NOT NULL)")
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("format", str(INDEX_FORMAT)),
                    ("digest", digest),
                    ("count", str(index.count)),
                    ("latest_modified", index.latest_modified or ""),
                    ("skipped", json.dumps(list(index.skipped))),
                ],
            )
            conn.executemany(
                "INSERT INTO packages VALUES (?, ?)",
                (
                    (name, json.dumps(records, separators=(",", ":")))
                    for name, records in index.packages.items()
                ),
            )
            conn.executemany(
                "INSERT INTO ids VALUES (?, ?)",
                ((ident, name) for ident, names in index.ids.items() for name in names),
            )
            conn.execute("CREATE INDEX ids_by_id ON ids (id)")
        conn.close()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class OsvDatabase:
    """Records grouped by package; a package's records are parsed on first use."""

    def __init__(
        self, location: Path, meta: DatabaseMeta, index: PackageIndex, *, embedded: bool = False
    ):
        self.location = location
        self.meta = meta
        self.embedded = embedded
        self._index = index
        self.count: int = index.count
        self._parsed: dict[str, list[Record]] = {}

    @property
    def skipped(self) -> tuple[str, ...]:
        """Malformed records the index left out, `member: reason`."""
        return self._index.skipped

    @property
    def date(self) -> str | None:
        return self.meta.date

    def age_days(self, today: dt.date | None = None) -> int | None:
        if not self.meta.date:
            return None
        try:
            when = dt.date.fromisoformat(self.meta.date[:10])
        except ValueError:
            return None
        return ((today or datetime.now(UTC).date()) - when).days

    def records_for(self, name: str) -> list[Record]:
        key = canonicalize_name(name)
        if key not in self._parsed:
            self._parsed[key] = [parse_record(r) for r in self._index.raw_records(key)]
        return self._parsed[key]

    def prefetch(self, names: Iterable[str]) -> None:
        """Read the records of many packages in one query (a scan knows them up front)."""
        wanted = sorted({canonicalize_name(n) for n in names} - self._parsed.keys())
        for key, raw in self._index.raw_records_many(wanted).items():
            self._parsed[key] = [parse_record(r) for r in raw]

    def records_by_id(self, ident: str) -> list[Record]:
        """Records whose id or alias is `ident` (for rating online results)."""
        out: list[Record] = []
        for pkg in self._index.packages_for_id(ident):
            out.extend(r for r in self.records_for(pkg) if ident in r.aliases | {r.id})
        return out

    def package_names(self) -> list[str]:
        return self._index.package_names()

    def info(
        self, *, source: str = "offline", note: str | None = None, today: dt.date | None = None
    ) -> DatabaseInfo:
        return DatabaseInfo(
            source=source,
            name=self.meta.name,
            location=str(self.location),
            date=self.meta.date,
            age_days=self.age_days(today),
            records=self.count,
            note=note,
        )


def open_database(path: Path | None = None) -> OsvDatabase:
    """`path` if given, else the database `qeguard db import/update` stored, else the
    snapshot shipped in the package."""
    if path is not None:
        if not path.exists():
            raise DatabaseError(
                f"no database at {path}", hint="give a zip or folder of OSV JSON records"
            )
        meta = (
            _read_meta(path.with_suffix(".json"))
            if path.is_file()
            else _read_meta(path / "qeguard-db.json")
        )
        return _load(path, meta)
    user = user_db_path()
    if user.is_file():
        return _load(user, _read_meta(user_meta_path()), stored=True)
    embedded = embedded_path()
    if not embedded.is_file():
        raise DatabaseError(
            "the bundled vulnerability database is missing",
            where=str(embedded),
            hint="reinstall qeguard, or run `qeguard db update`",
        )
    meta_file = Path(str(resources.files("qeguard.data") / EMBEDDED_META))
    return _load(embedded, _read_meta(meta_file), embedded=True)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _digest(path: Path, meta: DatabaseMeta | None = None) -> str:
    if path.is_file():
        if meta is not None and meta.sha256:
            st = path.stat()
            if st.st_size == meta.size and st.st_mtime_ns == meta.mtime_ns:
                return meta.sha256
        return file_digest(path)
    h = hashlib.sha256()
    for p in sorted(path.rglob("*.json")):
        st = p.stat()
        h.update(f"{p.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def index_path(digest: str) -> Path:
    return cache_dir() / "index" / f"{digest[:32]}-v{INDEX_FORMAT}.sqlite3"


def _open_index(idx_file: Path, digest: str) -> SqliteIndex | None:
    """The cached index for `digest`, or None when missing, stale or unreadable."""
    if not idx_file.is_file():
        return None
    try:
        index = SqliteIndex.open(idx_file)
    except (sqlite3.Error, KeyError, ValueError, OSError):
        return None
    if index.digest != digest or index.format != INDEX_FORMAT:
        return None
    return index


def _load(
    path: Path, meta: DatabaseMeta | None, *, embedded: bool = False, stored: bool = False
) -> OsvDatabase:
    digest = _digest(path, meta if stored else None)
    idx_file = index_path(digest)
    index: PackageIndex | None = _open_index(idx_file, digest)
    if index is None:
        built = build_index(path)
        # A read-only cache only costs speed, so a failed write is not an error.
        with contextlib.suppress(OSError, sqlite3.Error):
            write_index(built, digest, idx_file)
        index = built
    if meta is None:
        meta = DatabaseMeta(name=path.name, date=index.latest_modified)
    elif meta.date is None:
        meta = dataclasses.replace(meta, date=index.latest_modified)
    return OsvDatabase(path, meta, index, embedded=embedded)


def check_archive(zf: zipfile.ZipFile, where: str) -> list[zipfile.ZipInfo]:
    """The archive's JSON members, after refusing an archive no OSV export looks like:
    member names that climb out of the archive (`../`, absolute, drive letters), more
    members than any export has, or members whose declared size exceeds the caps."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise DatabaseError(
            f"the archive has {len(infos)} members (at most {MAX_MEMBERS} allowed)",
            where=where,
            hint="use OSV's PyPI export (all.zip)",
        )
    total = 0
    members: list[zipfile.ZipInfo] = []
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise DatabaseError(
                f"unsafe member name {name!r} in the archive (a path outside it)",
                where=where,
                hint="the archive is not an OSV export; the current database is kept",
            )
        if info.is_dir() or not name.endswith(".json"):
            continue
        if info.file_size > MAX_RECORD_BYTES:
            raise DatabaseError(
                f"member {name!r} is {info.file_size} bytes (at most {MAX_RECORD_BYTES})",
                where=where,
                hint="the archive is not an OSV export; the current database is kept",
            )
        total += info.file_size
        members.append(info)
    if total > MAX_TOTAL_BYTES:
        raise DatabaseError(
            f"the archive unpacks to {total} bytes (at most {MAX_TOTAL_BYTES})",
            where=where,
            hint="the archive is not an OSV export; the current database is kept",
        )
    return members


def iter_records(
    path: Path, skipped: list[str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(member name, parsed JSON) for every valid record in a zip or folder; a malformed
    record is left out and, when `skipped` is given, noted there as `member: reason`."""
    if path.is_dir():
        for p in sorted(path.rglob("*.json")):
            if p.name == "qeguard-db.json" or p.is_symlink():
                continue
            data = _parse_json(p.read_bytes(), str(p), skipped)
            if data is not None:
                yield str(p), data
        return
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatabaseError(
            f"not a readable zip: {exc}",
            where=str(path),
            hint="give a zip of OSV JSON records (OSV's PyPI all.zip)",
        ) from None
    with zf:
        for info in check_archive(zf, str(path)):
            where = f"{path}!{info.filename}"
            try:
                with zf.open(info) as member:
                    # Read one byte past the cap: a member may lie about its size.
                    blob = member.read(MAX_RECORD_BYTES + 1)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                raise DatabaseError(
                    f"damaged archive: {exc}",
                    where=where,
                    hint="download the database again with `qeguard db update`",
                ) from None
            if len(blob) > MAX_RECORD_BYTES:
                raise DatabaseError(
                    f"member is larger than {MAX_RECORD_BYTES} bytes",
                    where=where,
                    hint="the archive is not an OSV export; the current database is kept",
                )
            data = _parse_json(blob, where, skipped)
            if data is not None:
                yield where, data


def _parse_json(blob: bytes, where: str, skipped: list[str] | None) -> dict[str, Any] | None:
    try:
        data = json.loads(blob)
    except ValueError as exc:
        problem: str | None = f"malformed JSON: {exc}"
    else:
        problem = validate_record(data)
    if problem is not None:
        if skipped is not None:
            skipped.append(f"{where}: {problem}")
        return None
    return dict(data)


def build_index(path: Path) -> MemoryIndex:
    """Group every PyPI record by package, each in `osv.index_form` (what matching reads,
    with what warm scans would otherwise recompute stored alongside it)."""
    packages: dict[str, list[dict[str, Any]]] = {}
    ids: dict[str, list[str]] = {}
    skipped: list[str] = []
    normal_forms: dict[str, str | None] = {}
    latest = ""
    count = 0
    for _, data in iter_records(path, skipped):
        names = sorted(
            {
                canonicalize_name(a["package"]["name"])
                for a in data.get("affected") or ()
                if isinstance(a.get("package"), dict)
                and a["package"].get("ecosystem") == "PyPI"
                and a["package"].get("name")
            }
        )
        if not names:
            continue
        count += 1
        latest = max(latest, str(data.get("modified") or ""))
        slim = index_form(data, normal_forms=normal_forms)
        for n in names:
            packages.setdefault(n, []).append(slim)
        for ident in {data["id"], *(data.get("aliases") or ())}:
            bucket = ids.setdefault(str(ident), [])
            bucket.extend(n for n in names if n not in bucket)
    return MemoryIndex(
        packages=packages,
        ids=ids,
        count=count,
        latest_modified=latest[:10] or None,
        skipped=tuple(skipped),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Installed:
    db: OsvDatabase
    skipped: tuple[str, ...]  # malformed records left out, `member: reason`


def install(
    source: Path,
    *,
    name: str,
    origin: str,
    etag: str | None = None,
    last_modified: str | None = None,
    move: bool = False,
) -> Installed:
    """Make a validated zip (or folder) the database later scans use.

    Every record is read and checked before anything is replaced; the index is written
    before the zip, so the first scan is warm; the zip and then its metadata are replaced
    atomically, so a failure at any step leaves the previous database in place. With
    `move`, `source` (a file in the database folder) is renamed rather than copied."""
    index = build_index(source)
    if index.count == 0:
        raise DatabaseError(
            "the file holds no valid PyPI records"
            + (f" ({len(index.skipped)} malformed)" if index.skipped else ""),
            where=str(source),
            hint="use OSV's PyPI export: https://osv-vulnerabilities.storage."
            "googleapis.com/PyPI/all.zip; the current database is kept",
        )
    target = user_db_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    if move:
        staged = source
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        staged = Path(tmp)
        try:
            if source.is_dir():
                _zip_folder(source, staged)
            else:
                shutil.copyfile(source, staged)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
    try:
        digest = file_digest(staged)
        with contextlib.suppress(OSError, sqlite3.Error):
            write_index(index, digest, index_path(digest))
        os.replace(staged, target)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    st = target.stat()
    write_user_meta(
        DatabaseMeta(
            name=name,
            date=index.latest_modified,
            source=origin,
            etag=etag,
            last_modified=last_modified,
            checked=datetime.now(UTC).isoformat(timespec="seconds"),
            sha256=digest,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
        )
    )
    return Installed(db=open_database(), skipped=index.skipped)


def _zip_folder(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*.json")):
            if not p.is_symlink():
                zf.write(p, p.relative_to(folder).as_posix())
