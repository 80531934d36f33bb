"""The offline OSV database: a zip or folder of OSV records, and where scans find it.

A scan uses, in order: a database given by path, the one `qeguard db import/update`
stored in the user cache folder, or the dated snapshot shipped in the package. Each is
read through its cache index (`qeguard.deps.index`), built on first use.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from qeguard.deps.archive import FOLDER_META
from qeguard.deps.index import INDEX_FORMAT, SqliteIndex, build_index
from qeguard.deps.osv import Record, parse_record
from qeguard.errors import DatabaseError
from qeguard.fsutil import atomic_write
from qeguard.report import DatabaseInfo

STALE_DAYS = 30
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


class OsvDatabase:
    """Records grouped by package; a package's records are parsed on first use."""

    def __init__(
        self, location: Path, meta: DatabaseMeta, index: SqliteIndex, *, embedded: bool = False
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
            else _read_meta(path / FOLDER_META)
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
    index = _open_index(idx_file, digest)
    if index is None:
        try:
            index = build_index(path, idx_file, digest=digest)
        except (OSError, sqlite3.Error):
            # A read-only cache only costs speed, so a failed write is not an error.
            index = build_index(path, None, digest=digest)
    if meta is None:
        meta = DatabaseMeta(name=path.name, date=index.latest_modified)
    elif meta.date is None:
        meta = dataclasses.replace(meta, date=index.latest_modified)
    return OsvDatabase(path, meta, index, embedded=embedded)


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
    sha256: str | None = None,
) -> Installed:
    """Make a validated zip (or folder) the database later scans use.

    Every record is read and checked before anything is replaced; the index is written
    before the zip, so the first scan is warm; the zip and then its metadata are replaced
    atomically, so a failure at any step leaves the previous database in place. With
    `move`, `source` (a file in the database folder) is renamed rather than copied, and
    `sha256`, if given, is its digest (a download hashes what it writes)."""
    target = user_db_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    if move:
        staged = source
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        staged = Path(tmp)
    try:
        if not move:
            if source.is_dir():
                _zip_folder(source, staged)
            else:
                shutil.copyfile(source, staged)
        digest = sha256 if move and sha256 else file_digest(staged)
        idx_file = index_path(digest)
        try:
            index = build_index(source, idx_file, digest=digest)
        except (OSError, sqlite3.Error):
            # A read-only cache only costs speed, so a failed write is not an error.
            index = build_index(source, None, digest=digest)
        if index.count == 0:
            idx_file.unlink(missing_ok=True)
            raise DatabaseError(
                "the file holds no valid PyPI records"
                + (f" ({len(index.skipped)} malformed)" if index.skipped else ""),
                where=str(source),
                hint="use OSV's PyPI export: https://osv-vulnerabilities.storage."
                "googleapis.com/PyPI/all.zip; the current database is kept",
            )
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
