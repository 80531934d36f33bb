"""`--online` outdated pins: a local fake index on 127.0.0.1 stands in for PyPI and OSV."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from qeguard.deps.audit import outdated_findings, run_scan
from qeguard.deps.model import Dependency
from qeguard.deps.services.pip_audit import online_service
from qeguard.deps.services.pypi import latest_releases
from qeguard.integrity.policy import parse_policy
from qeguard.report import Severity

LATEST = {"requests": "2.32.3", "jinja2": "3.1.4"}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qg-cache"))


class _Index(BaseHTTPRequestHandler):
    """GET /pypi/<name>/json like PyPI; POST /v1/query like OSV (no vulnerabilities).
    `flaky` names answer 503 to their first request, `broken` ones always."""

    hits: dict[str, int] = {}  # noqa: RUF012 - reset by the fixture
    flaky: set[str] = set()  # noqa: RUF012
    broken: set[str] = set()  # noqa: RUF012

    def _send(self, status: int, body: object) -> None:
        blob = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(blob)))
        self.end_headers()
        self.wfile.write(blob)

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "pypi" or parts[2] != "json":
            self._send(404, {"message": "Not Found"})
            return
        name = parts[1]
        n = type(self).hits[name] = type(self).hits.get(name, 0) + 1
        if name in self.broken or (name in self.flaky and n == 1):
            self._send(503, {"message": "unavailable"})
        elif name in LATEST:
            self._send(200, {"info": {"name": name, "version": LATEST[name]}, "releases": {}})
        else:
            self._send(404, {"message": "Not Found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._send(200, {})

    def log_message(self, *args):
        pass


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fake index on 127.0.0.1; it also stops by itself after 60 s if a test hangs.
    `--online` is network use: the scans here may use it, and their database refresh
    asks this server too (which has no database: the refresh fails, visibly)."""
    _Index.hits, _Index.flaky, _Index.broken = {}, set(), set()
    server = HTTPServer(("127.0.0.1", 0), _Index)
    server.timeout = 0.2
    stop = threading.Event()
    deadline = time.monotonic() + 60

    def serve() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.delenv("QEGUARD_OFFLINE")
    monkeypatch.setenv("QEGUARD_DB_URL", f"http://127.0.0.1:{server.server_port}/PyPI/all.zip")
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        stop.set()
        thread.join(timeout=5)
        server.server_close()


def _pin(name: str, version: str, line: int = 1) -> Dependency:
    return Dependency(name=name, version=version, source="requirements.txt", line=line)


def test_latest_releases_retries_and_reports(index: str):
    _Index.flaky = {"requests"}
    _Index.broken = {"broken-pkg"}
    delays: list[float] = []
    got = latest_releases(
        ["requests", "jinja2", "private-pkg", "broken-pkg"], url=index, sleep=delays.append
    )
    assert got.latest == LATEST
    assert got.not_found == ("private-pkg",)
    assert set(got.failed) == {"broken-pkg"} and "503" in got.failed["broken-pkg"]
    assert _Index.hits["requests"] == 2 and _Index.hits["broken-pkg"] == 3
    assert sorted(delays) == [0.5, 0.5, 1.0]  # one retry for requests, two for broken-pkg


def test_outdated_findings_are_info_with_location():
    from qeguard.deps.services.pypi import LatestReleases

    deps = [_pin("Requests", "2.31.0", line=4), _pin("jinja2", "3.1.4"), _pin("x", "1")]
    found = outdated_findings(deps, LatestReleases(latest=LATEST))
    assert [(f.rule, f.severity, f.package, f.location.line) for f in found] == [
        ("QG-DEP-OUTDATED", Severity.INFO, "Requests", 4)
    ]
    assert found[0].details["latest"] == "2.32.3" and "2.32.3" in found[0].fix


def test_online_scan_reports_outdated_pins(index: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("QEGUARD_PYPI_URL", index)
    (tmp_path / "requirements.txt").write_text("requests==2.32.0\njinja2==3.1.4\nmine==0.1\n")
    osv = online_service("osv", timeout=5, url=f"{index}/v1/query")
    report = run_scan(tmp_path, None, online=True, online_service_obj=osv).report
    outdated = [f for f in report.findings if f.rule == "QG-DEP-OUTDATED"]
    assert [(f.package, f.severity, f.location.line) for f in outdated] == [
        ("requests", Severity.INFO, 1)
    ]
    assert report.database.source == "osv"
    assert report.exit_code == 0  # info findings never fail a scan


def test_failed_lookup_is_a_low_finding_not_a_failure(index: str, tmp_path: Path):
    _Index.broken = {"requests"}
    (tmp_path / "requirements.txt").write_text("requests==2.32.0\n")
    osv = online_service("osv", timeout=5, url=f"{index}/v1/query")
    report = run_scan(
        tmp_path, None, online=True, online_service_obj=osv, pypi_url=index, sleep=lambda s: None
    ).report
    [failed] = [f for f in report.findings if f.rule == "QG-DEP-OUTDATED"]
    assert failed.severity is Severity.LOW and failed.details["packages"] == ["requests"]
    assert report.exit_code == 0


def test_offline_scans_and_policy_opt_out_never_ask_the_index(index: str, tmp_path: Path):
    (tmp_path / "requirements.txt").write_text("requests==2.32.0\n")
    offline = run_scan(tmp_path, None, pypi_url=index).report
    assert not [f for f in offline.findings if f.rule == "QG-DEP-OUTDATED"]
    policy = parse_policy(
        '[[tiers]]\nname = "core"\npatterns = ["src/**"]\n[deps]\noutdated = false\n',
        source="policy.toml",
    )
    osv = online_service("osv", timeout=5, url=f"{index}/v1/query")
    online = run_scan(tmp_path, policy, online=True, online_service_obj=osv, pypi_url=index)
    assert not [f for f in online.report.findings if f.rule == "QG-DEP-OUTDATED"]
    assert "requests" not in _Index.hits
