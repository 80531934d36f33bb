"""The offline database's cache index: built once, read lazily, rebuilt when bad.

On the tiny fixture (tests/data/deps/osv: real records copied from the bundled snapshot),
so no test here indexes the whole snapshot unless it is about the snapshot."""

from __future__ import annotations

import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest
from helpers import DATA
from qeguard.deps.database import (
    MemoryIndex,
    SqliteIndex,
    _digest,
    build_index,
    embedded_path,
    index_path,
    install,
    open_database,
    read_user_meta,
    user_db_path,
)
from qeguard.errors import DatabaseError

OSV = DATA / "deps" / "osv"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """The fixture's records as a zip, like OSV's all.zip."""
    path = tmp_path / "tiny.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(OSV.glob("*.json")):
            zf.writestr(p.name, p.read_bytes())
    return path


def _index_file(path: Path) -> Path:
    return index_path(_digest(path))


def test_first_open_builds_the_index_and_later_opens_read_it(tiny: Path):
    cold = open_database(tiny)
    assert isinstance(cold._index, MemoryIndex)
    assert _index_file(tiny).is_file()
    warm = open_database(tiny)
    assert isinstance(warm._index, SqliteIndex)
    assert warm.count == cold.count == 16 and warm.date == cold.date
    for name in ("jinja2", "requests", "pyspark", "no-such-package"):
        assert warm.records_for(name) == cold.records_for(name)
    assert warm.package_names() == cold.package_names()
    assert [r.id for r in warm.records_by_id("CVE-2019-10906")] == [
        r.id for r in cold.records_by_id("CVE-2019-10906")
    ]


def test_warm_open_parses_only_what_is_asked(tiny: Path):
    open_database(tiny)
    db = open_database(tiny)
    db.records_for("Jinja2")
    assert set(db._parsed) == {"jinja2"}


@pytest.mark.parametrize("damage", ["garbage", "other-digest", "empty"])
def test_bad_index_is_rebuilt(tiny: Path, damage: str):
    open_database(tiny)
    path = _index_file(tiny)
    if damage == "garbage":
        path.write_bytes(b"not a database at all" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = 'x' WHERE key = 'digest'")
        conn.close()
    db = open_database(tiny)
    assert isinstance(db._index, MemoryIndex)  # rebuilt, not trusted
    assert any(r.id == "PYSEC-2019-217" for r in db.records_for("jinja2"))
    assert isinstance(open_database(tiny)._index, SqliteIndex)  # and written again


def test_unwritable_cache_still_scans(tiny: Path, tmp_path: Path, monkeypatch):
    # A cache "folder" below a regular file cannot be created, even by root.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(blocker / "cache"))
    db = open_database(tiny)
    assert any(r.id == "PYSEC-2019-217" for r in db.records_for("jinja2"))
    assert isinstance(db._index, MemoryIndex)


def test_index_stores_precomputed_severity_and_versions(tiny: Path):
    index = build_index(tiny)
    [rec] = [r for r in index.raw_records("urllib3") if r["id"] == "PYSEC-2023-192"]
    assert rec["x-qeguard-severity"] == [
        "high",
        "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N",
        8.1,
        "cvss_v3",
    ]
    assert any("x-qeguard-normalized" in a for a in rec["affected"])


def test_malformed_records_are_skipped_and_remembered(tmp_path: Path):
    folder = tmp_path / "osv"
    shutil.copytree(OSV, folder)
    (folder / "GHSA-bad.json").write_text('{"id": "GHSA-bad", "modified": "x", "affected": 3}')
    (folder / "broken.json").write_text("{")
    db = open_database(folder)
    assert db.count == 16 and len(db.skipped) == 2
    assert any("`affected` is not a list" in s for s in db.skipped)
    warm = open_database(folder)
    assert isinstance(warm._index, SqliteIndex) and warm.skipped == db.skipped


def test_import_is_atomic_and_a_bad_archive_keeps_the_database(tiny: Path, tmp_path: Path):
    done = install(tiny, name="tiny", origin=str(tiny))
    assert done.db.count == 16 and user_db_path().read_bytes() == tiny.read_bytes()
    meta = read_user_meta()
    assert meta.sha256 == _digest(tiny) and meta.size == tiny.stat().st_size
    bad = tmp_path / "traversal.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../x.json", (OSV / "PYSEC-2019-217.json").read_bytes())
    with pytest.raises(DatabaseError, match="unsafe member name"):
        install(bad, name="bad", origin=str(bad))
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("x.json", "{}")
    with pytest.raises(DatabaseError, match="no valid PyPI records"):
        install(empty, name="empty", origin=str(empty))
    assert user_db_path().read_bytes() == tiny.read_bytes()
    assert not [p for p in user_db_path().parent.iterdir() if p.name.endswith(".tmp")]


def test_the_bundled_snapshot_indexes_every_record():
    """About the snapshot itself: its index holds all 2661 PyPI records."""
    db = open_database()
    assert db.embedded and db.count == 2661 and db.date == "2024-10-10" and db.skipped == ()


def test_index_form_parses_like_the_full_record():
    """Over the whole bundled snapshot: the slim form the index stores loses nothing that
    matching, severity, summaries or aliases use."""
    from qeguard.deps.database import iter_records
    from qeguard.deps.osv import index_form, parse_record

    checked = 0
    for _, data in iter_records(embedded_path()):
        if any((a.get("package") or {}).get("ecosystem") == "PyPI" for a in data["affected"]):
            assert parse_record(index_form(data)) == parse_record(data), data["id"]
            checked += 1
    assert checked == 2661
