"""Reading an OSV archive (OSV's PyPI `all.zip`, or a folder of records) without trusting it.

Whoever made the archive, it is bounded before anything is unpacked (member count, each
record's size, the total size, member names that would climb out of it) and every record
is parsed and checked (`osv.validate_record`): a malformed record is reported, not fatal.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qeguard.deps.osv import validate_record
from qeguard.errors import DatabaseError

# Real OSV records are a few kB (the largest PyPI record is about 200 kB) and OSV's PyPI
# export has tens of thousands of them.
MAX_RECORD_BYTES = 8 << 20
MAX_MEMBERS = 2_000_000
MAX_TOTAL_BYTES = 8 << 30
# Written beside a folder database by `qeguard db import`; not a record.
FOLDER_META = "qeguard-db.json"


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


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
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
    return blob


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatabaseError(
            f"not a readable zip: {exc}",
            where=str(path),
            hint="give a zip of OSV JSON records (OSV's PyPI all.zip)",
        ) from None


def blobs(path: Path) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) of every record file in a folder or member of a checked zip."""
    if path.is_dir():
        for p in sorted(path.rglob("*.json")):
            if p.name == FOLDER_META or p.is_symlink():
                continue
            yield str(p), p.read_bytes()
        return
    with open_zip(path) as zf:
        for info in check_archive(zf, str(path)):
            yield f"{path}!{info.filename}", read_member(zf, info, path)


def iter_records(
    path: Path, skipped: list[str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(member name, parsed JSON) for every valid record in a zip or folder; a malformed
    record is left out and, when `skipped` is given, noted there as `member: reason`."""
    for where, blob in blobs(path):
        parsed = parse(blob)
        if isinstance(parsed, str):
            if skipped is not None:
                skipped.append(f"{where}: {parsed}")
            continue
        yield where, parsed[1]


def parse(blob: bytes) -> tuple[str, dict[str, Any]] | str:
    """(JSON text, record) of a valid record, else why it is not one."""
    try:
        # What json.loads(bytes) does, keeping the text (the index stores it as it is),
        # but strict: a lone surrogate is not valid UTF-8 and could not be stored.
        text = blob.decode(json.detect_encoding(blob))
        data = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return f"malformed JSON: {exc}"
    problem = validate_record(data)
    if problem is not None:
        return problem
    return text, data
