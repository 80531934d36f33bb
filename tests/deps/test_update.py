"""`qeguard db update` and the scans' automatic refresh, against a real HTTP server on
127.0.0.1 serving real OSV zips (records copied from the bundled snapshot)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import DATA, FILES, Protected
from qeguard.cli.main import main
from qeguard.deps.audit import run_scan
from qeguard.deps.database import (
    open_database,
    read_user_meta,
    user_db_path,
    write_user_meta,
)
from qeguard.deps.update import Limits, refresh, update_database
from qeguard.errors import DatabaseError, UsageError

OSV = DATA / "deps" / "osv"
ETAG = '"v1"'
LAST_MODIFIED = "Wed, 09 Oct 2024 10:00:00 GMT"


def osv_zip(*extra: tuple[str, bytes], skip: tuple[str, ...] = ()) -> bytes:
    """A zip in the layout of OSV's all.zip: one JSON record per member."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(OSV.glob("*.json")):
            if p.stem not in skip:
                zf.writestr(p.name, p.read_bytes())
        for name, blob in extra:
            zf.writestr(name, blob)
    return buf.getvalue()


@dataclass
class Served:
    """What the server answers; tests change it between requests."""

    body: bytes = b""
    status: int = 200
    etag: str | None = ETAG
    mode: str = "normal"  # normal | truncated | slow
    requests: list[dict[str, str]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    served: Served

    def do_GET(self) -> None:
        s = self.served
        s.requests.append({k.lower(): v for k, v in self.headers.items()})
        if s.status != 200:
            self.send_response(s.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if s.etag and self.headers.get("If-None-Match") == s.etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(s.body)))
        if s.etag:
            self.send_header("ETag", s.etag)
        self.send_header("Last-Modified", LAST_MODIFIED)
        self.end_headers()
        if s.mode == "truncated":
            self.wfile.write(s.body[: len(s.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if s.mode == "slow":
            self.wfile.write(s.body[:100])
            self.wfile.flush()
            time.sleep(2.0)  # longer than the client's timeout
        self.wfile.write(s.body[100:] if s.mode == "slow" else s.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Served, str]]:
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QEGUARD_OFFLINE")  # this file is about the network (to 127.0.0.1)
    served = Served(body=osv_zip())
    handler = type("Handler", (_Handler,), {"served": served})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_port}/PyPI/all.zip"
    monkeypatch.setenv("QEGUARD_DB_URL", url)
    try:
        yield served, url
    finally:
        httpd.shutdown()
        httpd.server_close()


def _stored() -> bytes:
    return user_db_path().read_bytes()


def test_200_installs_then_304_costs_one_round_trip(server):
    served, url = server
    progress: list[tuple[int, int | None]] = []
    result = update_database(progress=lambda done, total: progress.append((done, total)))
    assert result.changed and result.db is not None and result.db.count == 16
    assert _stored() == served.body
    assert progress[-1] == (len(served.body), len(served.body))
    meta = read_user_meta()
    assert meta.etag == ETAG and meta.last_modified == LAST_MODIFIED and meta.source == url
    assert meta.sha256 and meta.checked
    # The index is written with the database: the first scan is warm.
    assert not open_database()._index.built
    first_checked = meta.checked
    time.sleep(1.1)
    again = update_database()
    assert not again.changed and again.db is None
    assert served.requests[-1]["if-none-match"] == ETAG
    assert served.requests[-1]["if-modified-since"] == LAST_MODIFIED
    assert read_user_meta().checked > first_checked  # confirmed current now


def test_404_keeps_the_previous_database(server):
    served, _ = server
    update_database()
    before = _stored()
    served.status = 404
    with pytest.raises(DatabaseError, match="answered 404"):
        update_database(force=True)
    assert _stored() == before and open_database().count == 16


@pytest.mark.parametrize(
    ("mode", "message"),
    [("truncated", "cut off"), ("slow", "no data for 0.5 s")],
)
def test_truncated_or_slow_body_keeps_the_previous_database(server, mode, message):
    served, _ = server
    update_database()
    before = _stored()
    served.body, served.etag, served.mode = osv_zip(skip=("PYSEC-2019-217",)), '"v2"', mode
    with pytest.raises(DatabaseError, match=message):
        update_database(limits=Limits(timeout=0.5))
    assert _stored() == before
    assert any(r.id == "PYSEC-2019-217" for r in open_database().records_for("jinja2"))
    assert not list(user_db_path().parent.glob(".download.*"))  # no temp file left


def test_zip_with_path_traversal_is_refused(server):
    served, _ = server
    update_database()
    before = _stored()
    record = (OSV / "PYSEC-2019-217.json").read_bytes()
    served.body, served.etag = osv_zip(("../../evil.json", record)), '"v2"'
    with pytest.raises(DatabaseError, match=r"unsafe member name '\.\./\.\./evil\.json'"):
        update_database()
    assert _stored() == before
    assert not (user_db_path().parent.parent.parent / "evil.json").exists()


def test_oversized_download_is_refused_before_reading(server):
    served, _ = server
    with pytest.raises(DatabaseError, match="at most 1000"):
        update_database(limits=Limits(max_bytes=1000))
    assert not user_db_path().exists()
    assert len(served.requests) == 1


def test_a_malformed_record_is_skipped_with_a_warning(server, capsys):
    served, _ = server
    served.body = osv_zip(
        ("GHSA-bad1.json", b'{"id": "GHSA-bad1", "modified": 5}'),
        ("GHSA-bad2.json", b"{not json"),
    )
    assert main(["db", "update"]) == 0
    err = capsys.readouterr().err
    assert "skipped a malformed record" in err and "GHSA-bad1.json" in err
    assert "GHSA-bad2.json: malformed JSON" in err
    db = open_database()
    assert db.count == 16 and len(db.skipped) == 2


def test_offline_forbids_the_download(server, monkeypatch):
    served, _ = server
    monkeypatch.setenv("QEGUARD_OFFLINE", "1")
    with pytest.raises(UsageError, match="offline"):
        update_database()
    assert refresh(max_age_days=0, offline=False).attempted is False
    assert served.requests == []


def _requirements(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "requirements.txt").write_text("jinja2==2.10\n")
    return root


def test_scan_refreshes_a_stale_database_then_uses_the_fresh_one(server, tmp_path: Path):
    served, _ = server
    root = _requirements(tmp_path)
    report = run_scan(root, None).report  # nothing stored yet: the bundled one is old
    assert len(served.requests) == 1
    assert report.database.records == 16 and report.database.name == "OSV PyPI (all.zip)"
    assert not [f for f in report.findings if f.details.get("id") == "refresh-failed"]
    run_scan(root, None)  # confirmed current less than a day ago: no request
    assert len(served.requests) == 1
    meta = read_user_meta()
    old = (datetime.now(UTC) - timedelta(days=2)).isoformat(timespec="seconds")
    write_user_meta(type(meta)(**{**meta.to_dict(), "checked": old}))
    run_scan(root, None)  # two days old: a conditional request, answered 304
    assert len(served.requests) == 2 and served.requests[-1]["if-none-match"] == ETAG


def test_scan_falls_back_with_a_visible_finding_when_the_network_fails(server, tmp_path):
    served, _ = server
    served.status = 503
    report = run_scan(_requirements(tmp_path), None).report
    failed = [f for f in report.findings if f.details.get("id") == "refresh-failed"]
    assert failed and "answered 503" in failed[0].message
    assert report.database.date == "2024-10-10"  # the bundled snapshot answered
    assert any(f.details.get("id") == "PYSEC-2019-217" for f in report.findings)


def test_offline_scan_never_asks(server, tmp_path, capsys):
    served, _ = server
    root = _requirements(tmp_path)
    assert main(["-C", str(root), "deps", "--offline", "--format", "json"]) == 1
    assert served.requests == []
    doc = json.loads(capsys.readouterr().out)
    assert doc["database"]["date"] == "2024-10-10"
    assert not [f for f in doc["findings"] if f["details"].get("id") == "refresh-failed"]
    assert main(["-C", str(root), "deps", "--offline", "--online"]) == 2


def test_ci_offline_never_asks(server, repo: Path, keypair, capsys):
    """`qeguard ci --offline` scans with what is stored (here the bundled snapshot) and
    sends no request; the same run without it refreshes first."""
    served, _ = server
    Protected.build(
        repo, (keypair("alice"),), files={**FILES, "requirements.txt": "jinja2==2.10\n"}
    )
    assert main(["-C", str(repo), "ci", "--offline", "--format", "json"]) in (0, 1)
    assert served.requests == []
    doc = json.loads(capsys.readouterr().out)
    assert doc["database"]["date"] == "2024-10-10" and doc["inputs"]["dependencies"] > 0
    assert main(["-C", str(repo), "ci", "--format", "json"]) in (0, 1)
    assert len(served.requests) == 1
    assert json.loads(capsys.readouterr().out)["database"]["name"] == "OSV PyPI (all.zip)"
    assert main(["-C", str(repo), "ci", "--offline", "--online"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_refresh_honours_the_policy_max_age(server, tmp_path):
    served, _ = server
    update_database()
    assert refresh(max_age_days=1, offline=False).attempted is False
    assert refresh(max_age_days=0, offline=False).attempted is True
    assert len(served.requests) == 2


def test_db_update_unreachable_is_a_clear_error(server, capsys):
    assert main(["db", "update", "--url", "http://127.0.0.1:9/all.zip", "--timeout", "2"]) == 2
    assert "cannot download the database" in capsys.readouterr().err


def test_an_imported_database_is_not_replaced_by_the_refresh(server, tmp_path):
    served, _ = server
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "PYSEC-2019-217.json").write_bytes((OSV / "PYSEC-2019-217.json").read_bytes())
    assert main(["db", "import", str(folder)]) == 0
    assert refresh(max_age_days=0, offline=False).attempted is False
    assert served.requests == [] and open_database().count == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_download_draws_a_progress_bar_on_a_terminal(server, monkeypatch):
    """`db update` reports progress through the CLI's Progress bar, in MiB."""
    from qeguard.cli.commands.db import DownloadBar
    from qeguard.cli.console import Console

    served, _ = server
    served.body = osv_zip(("README.txt", os.urandom(3 << 20)))  # 3 MiB: random stays big
    monkeypatch.setenv("TERM", "xterm")
    err = _Terminal()
    bar = DownloadBar(Console(out=io.StringIO(), err=err), delay_s=0)
    update_database(progress=bar)
    bar.finish()
    drawn = err.getvalue()
    assert "downloading the vulnerability database (MiB) [" in drawn
    assert "3/3 100%" in drawn and drawn.endswith("\r\x1b[2K")  # cleared at the end
    quiet = io.StringIO()  # not a terminal: nothing drawn
    bar = DownloadBar(Console(out=io.StringIO(), err=quiet), delay_s=0)
    update_database(progress=bar, force=True)
    assert quiet.getvalue() == ""
