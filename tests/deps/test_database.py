"""The offline database's cache index: built once, read lazily, rebuilt when bad."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from qeguard.deps.database import (
    MemoryIndex,
    SqliteIndex,
    _digest,
    build_index,
    embedded_path,
    index_path,
    open_database,
)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path / "cache"))


def _index_file() -> Path:
    return index_path(_digest(embedded_path()))


def test_first_open_builds_the_index_and_later_opens_read_it():
    cold = open_database()
    assert isinstance(cold._index, MemoryIndex)
    assert _index_file().is_file()
    warm = open_database()
    assert isinstance(warm._index, SqliteIndex)
    assert warm.count == cold.count == 2661 and warm.date == cold.date == "2024-10-10"
    for name in ("jinja2", "requests", "django", "no-such-package"):
        assert warm.records_for(name) == cold.records_for(name)
    assert warm.package_names() == cold.package_names()
    assert [r.id for r in warm.records_by_id("CVE-2019-10906")] == [
        r.id for r in cold.records_by_id("CVE-2019-10906")
    ]


def test_warm_open_parses_only_what_is_asked():
    open_database()
    db = open_database()
    db.records_for("Jinja2")
    assert set(db._parsed) == {"jinja2"}


@pytest.mark.parametrize("damage", ["garbage", "other-digest", "empty"])
def test_bad_index_is_rebuilt(damage: str):
    open_database()
    path = _index_file()
    if damage == "garbage":
        path.write_bytes(b"not a database at all" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = 'x' WHERE key = 'digest'")
        conn.close()
    db = open_database()
    assert isinstance(db._index, MemoryIndex)  # rebuilt, not trusted
    assert any(r.id == "PYSEC-2019-217" for r in db.records_for("jinja2"))
    assert isinstance(open_database()._index, SqliteIndex)  # and written again


def test_unwritable_cache_still_scans(tmp_path: Path, monkeypatch):
    # A cache "folder" below a regular file cannot be created, even by root.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(blocker / "cache"))
    db = open_database()
    assert any(r.id == "PYSEC-2019-217" for r in db.records_for("jinja2"))
    assert isinstance(db._index, MemoryIndex)


def test_index_stores_precomputed_severity_and_versions(tmp_path: Path):
    index = build_index(embedded_path())
    [rec] = [r for r in index.raw_records("jinja2") if r["id"] == "PYSEC-2019-217"]
    assert rec["x-qeguard-severity"][0] in {"critical", "high", "medium", "low", "unknown"}
    assert any("x-qeguard-normalized" in a for a in rec["affected"])


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
