"""The offline OSV database: a zip or folder of OSV records, indexed once per database.

The first scan against a database groups its records by PEP 503 package name into a JSON
index in the user cache folder, keyed by the database's digest; later scans read only that
index and parse the records of the packages they look up. JSON rather than pickle, so a
tampered cache file can corrupt a scan's input but never run code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from guard.deps.osv import NORMALIZED_KEY, Record, normalized_versions, parse_record
from guard.errors import DatabaseError
from guard.fsutil import atomic_write
from guard.report.model import DatabaseInfo

INDEX_FORMAT = 3
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
    return Path(str(resources.files("guard.data") / EMBEDDED_ZIP))


def user_db_path() -> Path:
    return cache_dir() / "db" / USER_DB


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseMeta:
    name: str
    date: str | None  # YYYY-MM-DD: when the data was current
    source: str | None = None
    license: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "date": self.date,
            "source": self.source,
            "license": self.license,
        }


def _read_meta(path: Path) -> DatabaseMeta | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return DatabaseMeta(
        name=str(data.get("name") or path.stem),
        date=data.get("date"),
        source=data.get("source"),
        license=data.get("license"),
    )


class OsvDatabase:
    """Records grouped by package, loaded from the index; records parsed on first use."""

    def __init__(
        self, location: Path, meta: DatabaseMeta, index: dict[str, Any], *, embedded: bool = False
    ):
        self.location = location
        self.meta = meta
        self.embedded = embedded
        self._packages: dict[str, list[dict[str, Any]]] = index["packages"]
        self._ids: dict[str, list[str]] = index["ids"]
        self.count: int = index["count"]
        self._parsed: dict[str, list[Record]] = {}

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
            self._parsed[key] = [parse_record(r) for r in self._packages.get(key, ())]
        return self._parsed[key]

    def records_by_id(self, ident: str) -> list[Record]:
        """Records whose id or alias is `ident` (for rating online results)."""
        out: list[Record] = []
        for pkg in self._ids.get(ident, ()):
            out.extend(r for r in self.records_for(pkg) if ident in r.aliases | {r.id})
        return out

    def package_names(self) -> list[str]:
        return sorted(self._packages)

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
        return _load(user, _read_meta(user.with_name(USER_META)))
    embedded = embedded_path()
    if not embedded.is_file():
        raise DatabaseError(
            "the bundled vulnerability database is missing",
            where=str(embedded),
            hint="reinstall qeguard, or run `qeguard db update`",
        )
    meta_file = Path(str(resources.files("guard.data") / EMBEDDED_META))
    return _load(embedded, _read_meta(meta_file), embedded=True)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    else:
        for p in sorted(path.rglob("*.json")):
            st = p.stat()
            h.update(f"{p.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def index_path(digest: str) -> Path:
    return cache_dir() / "index" / f"{digest[:32]}-v{INDEX_FORMAT}.json"


def _load(path: Path, meta: DatabaseMeta | None, *, embedded: bool = False) -> OsvDatabase:
    digest = _digest(path)
    idx_file = index_path(digest)
    index: dict[str, Any] | None = None
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(idx_file.read_bytes())
        if isinstance(loaded, dict) and loaded.get("digest") == digest:
            index = loaded
    if index is None:
        index = build_index(path)
        index["digest"] = digest
        # A read-only cache only costs speed, so a failed write is not an error.
        with contextlib.suppress(OSError):
            atomic_write(idx_file, json.dumps(index, separators=(",", ":")).encode())
    if meta is None:
        meta = DatabaseMeta(name=path.name, date=index.get("latest_modified"))
    elif meta.date is None:
        meta = DatabaseMeta(
            name=meta.name,
            date=index.get("latest_modified"),
            source=meta.source,
            license=meta.license,
        )
    return OsvDatabase(path, meta, index, embedded=embedded)


def iter_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(member name, parsed JSON) for every record in a zip or folder."""
    if path.is_dir():
        for p in sorted(path.rglob("*.json")):
            if p.name == "qeguard-db.json":
                continue
            yield str(p), _parse_json(p.read_bytes(), str(p))
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
        for info in zf.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            where = f"{path}!{info.filename}"
            yield where, _parse_json(zf.read(info), where)


def _parse_json(blob: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(blob)
    except ValueError as exc:
        raise DatabaseError(
            f"malformed OSV record: {exc}",
            where=where,
            hint="re-download the database with `qeguard db update`",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise DatabaseError("not an OSV record (no `id`)", where=where)
    return data


def build_index(path: Path) -> dict[str, Any]:
    packages: dict[str, list[dict[str, Any]]] = {}
    ids: dict[str, list[str]] = {}
    latest = ""
    count = 0
    for _, data in iter_records(path):
        names = sorted(
            {
                canonicalize_name(a["package"]["name"])
                for a in data.get("affected") or ()
                if isinstance(a, dict)
                and isinstance(a.get("package"), dict)
                and a["package"].get("ecosystem") == "PyPI"
                and a["package"].get("name")
            }
        )
        if not names:
            continue
        count += 1
        for entry in data.get("affected") or ():
            if isinstance(entry, dict) and isinstance(entry.get("versions"), list):
                entry[NORMALIZED_KEY] = normalized_versions(str(v) for v in entry["versions"])
        latest = max(latest, str(data.get("modified") or ""))
        for n in names:
            packages.setdefault(n, []).append(data)
        for ident in {data["id"], *(data.get("aliases") or ())}:
            bucket = ids.setdefault(str(ident), [])
            bucket.extend(n for n in names if n not in bucket)
    return {
        "format": INDEX_FORMAT,
        "count": count,
        "packages": packages,
        "ids": ids,
        "latest_modified": latest[:10] or None,
    }


def install(source: Path, *, name: str, origin: str) -> OsvDatabase:
    """Copy a validated zip into the user cache as the database later scans use."""
    index = build_index(source)  # validates every record before anything is replaced
    if index["count"] == 0:
        raise DatabaseError(
            "the file holds no PyPI records",
            where=str(source),
            hint="use OSV's PyPI export: https://osv-vulnerabilities.storage."
            "googleapis.com/PyPI/all.zip",
        )
    target = user_db_path()
    blob = _zip_folder(source) if source.is_dir() else source.read_bytes()
    atomic_write(target, blob)
    meta = DatabaseMeta(name=name, date=index["latest_modified"], source=origin)
    meta_dict = {**meta.to_dict(), "imported": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic_write(target.with_name(USER_META), json.dumps(meta_dict, indent=2).encode())
    return open_database()


def _zip_folder(folder: Path) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*.json")):
            zf.write(p, p.relative_to(folder).as_posix())
    return buf.getvalue()
