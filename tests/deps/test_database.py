"""The offline database's cache index: built once, read lazily, rebuilt when bad.

On the tiny fixture (tests/data/deps/osv: real records copied from the bundled snapshot),
so no test here indexes the whole snapshot unless it is about the snapshot."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest
from helpers import DATA
from qeguard.deps.database import (
    _digest,
    embedded_path,
    index_path,
    install,
    open_database,
    read_user_meta,
    user_db_path,
)
from qeguard.deps.index import build_index
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
    assert cold._index.built
    assert _index_file(tiny).is_file()
    warm = open_database(tiny)
    assert not warm._index.built
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
    assert db._index.built  # rebuilt, not trusted
    assert any(r.id == "PYSEC-2019-217" for r in db.records_for("jinja2"))
    assert not open_database(tiny)._index.built  # and written again


def test_unwritable_cache_still_scans(tiny: Path, tmp_path: Path, monkeypatch):
    # A cache "folder" below a regular file cannot be created, even by root.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(blocker / "cache"))
    db = open_database(tiny)
    assert any(r.id == "PYSEC-2019-217" for r in db.records_for("jinja2"))
    assert db._index.built and not (blocker / "cache").exists()


def test_index_stores_precomputed_severity_and_versions(tiny: Path):
    index = build_index(tiny, None, digest="x")
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
    assert not warm._index.built and warm.skipped == db.skipped


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


def test_the_index_parses_like_the_full_record():
    """Over the whole bundled snapshot: each record as the index gives it back (its own
    text, with the precomputed extras in place) parses exactly like the record itself."""
    import copy

    from qeguard.deps.archive import iter_records
    from qeguard.deps.osv import index_extras, parse_record, with_extras

    db = open_database()
    checked = 0
    for _, data in iter_records(embedded_path()):
        if any((a.get("package") or {}).get("ecosystem") == "PyPI" for a in data["affected"]):
            expected = parse_record(data)
            stored = with_extras(copy.deepcopy(data), index_extras(data))
            assert parse_record(stored) == expected, data["id"]
            name = next(iter(expected.package_names()))
            assert expected in db.records_for(name), data["id"]
            checked += 1
    assert checked == 2661


def _rows(index_file: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple]]:
    with contextlib.closing(sqlite3.connect(index_file)) as conn:
        records = conn.execute("SELECT name, pair FROM records ORDER BY rowid").fetchall()
        ids = conn.execute("SELECT id, name FROM ids ORDER BY rowid").fetchall()
        meta = conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
    return records, ids, meta


def _not_here(*args: object) -> None:
    raise AssertionError("indexed in this process, not by the workers")


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """The fixture's records with a malformed one and a non-PyPI one between them."""
    path = tmp_path / "mixed.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, p in enumerate(sorted(OSV.glob("*.json"))):
            zf.writestr(p.name, p.read_bytes())
            if n == 5:
                zf.writestr("GHSA-bad.json", '{"id": "GHSA-bad", "modified": "x", "affected": 3}')
                zf.writestr("GO-1.json", '{"id": "GO-1", "modified": "2024-01-01T00:00:00Z"}')
                # Text SQLite cannot store: a lone surrogate, escaped and as raw bytes.
                record = json.loads(p.read_text())
                zf.writestr("alias.json", json.dumps({**record, "aliases": ["\ud800"]}))
                zf.writestr(
                    "raw.json", json.dumps(record).encode()[:-1] + b', "x": "\xed\xa0\x80"}'
                )
    return path


def test_worker_processes_build_the_same_index(mixed: Path, tmp_path: Path, monkeypatch):
    """Real worker processes, as a 100 MB archive gets them, on a small archive: the index
    is byte for byte the rows a single process writes, in archive order, with the
    malformed record skipped and named once."""
    import qeguard.deps.index as index_module

    serial = build_index(mixed, tmp_path / "serial.sqlite3", digest="d", workers=1)
    monkeypatch.setattr(index_module, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(index_module, "_fill_serial", _not_here)
    parallel = build_index(mixed, tmp_path / "parallel.sqlite3", digest="d", workers=3)
    assert parallel.count == serial.count == 16
    assert parallel.skipped == serial.skipped and len(serial.skipped) == 3
    assert "GHSA-bad.json: `affected` is not a list" in serial.skipped[0]
    assert (
        "alias.json: a name, id or `modified` holds an escaped lone surrogate" in serial.skipped[1]
    )
    assert "raw.json: malformed JSON: 'utf-8' codec can't decode" in serial.skipped[2]
    assert _rows(tmp_path / "parallel.sqlite3") == _rows(tmp_path / "serial.sqlite3")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_without_worker_processes_the_build_runs_here(mixed: Path, tmp_path: Path, monkeypatch):
    """A Python that cannot start (as in a frozen application): the same index, built in
    this process."""
    import qeguard.deps.index as index_module

    serial = build_index(mixed, tmp_path / "serial.sqlite3", digest="d", workers=1)
    monkeypatch.setattr(index_module, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(index_module.sys, "executable", str(tmp_path / "no-such-python"))
    fallback = build_index(mixed, tmp_path / "fallback.sqlite3", digest="d", workers=2)
    assert fallback.count == serial.count
    assert _rows(tmp_path / "fallback.sqlite3") == _rows(tmp_path / "serial.sqlite3")


def test_a_damaged_member_fails_the_workers_build(tiny: Path, tmp_path: Path, monkeypatch):
    """A member whose bytes do not match its CRC, read by a worker process: the build
    fails with the member named, and no index or temp file is left."""
    import qeguard.deps.index as index_module

    data = bytearray(tiny.read_bytes())
    with zipfile.ZipFile(tiny) as zf:
        info = zf.infolist()[-1]
    # The last member's data (stored, not compressed): flip its first byte.
    data[info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)] ^= 0xFF
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(index_module, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(index_module, "_fill_serial", _not_here)
    target = tmp_path / "index" / "x.sqlite3"
    with pytest.raises(DatabaseError, match="damaged archive") as err:
        build_index(damaged, target, digest="d", workers=2)
    assert err.value.where == f"{damaged}!{info.filename}"
    assert list(target.parent.iterdir()) == []


def test_the_folder_a_build_runs_in_cannot_put_code_in_its_workers(
    mixed: Path, tmp_path: Path, monkeypatch
):
    """Scans run in the repository under test: a `json.py` or `zipfile.py` there must not
    be what the worker processes import (they run isolated)."""
    import qeguard.deps.index as index_module

    hostile = tmp_path / "hostile repo"
    hostile.mkdir()
    marker = tmp_path / "ran"
    for name in ("json", "zipfile", "sqlite3", "qeguard"):
        (hostile / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name}')\n")
    monkeypatch.chdir(hostile)
    monkeypatch.setenv("PYTHONPATH", str(hostile))
    monkeypatch.setattr(index_module, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(index_module, "_fill_serial", _not_here)
    index = build_index(mixed, tmp_path / "index.sqlite3", digest="d", workers=2)
    assert index.count == 16 and not marker.exists()
