"""pip-audit integration: the names we import, the offline service, retries and fallback."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from guard.deps.database import open_database
from guard.deps.interface import Dependency
from guard.deps.service import OfflineService, ServiceUnavailable, lookup, online_service

online = pytest.mark.skipif(
    os.environ.get("QEGUARD_ONLINE_TESTS") != "1",
    reason="set QEGUARD_ONLINE_TESTS=1 to reach the network",
)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qg-cache"))


def test_pip_audit_names_we_use_exist():
    from pip_audit._service import OsvService, PyPIService
    from pip_audit._service.interface import (
        ResolvedDependency,
        ServiceError,
        SkippedDependency,
        VulnerabilityResult,
        VulnerabilityService,
    )

    assert issubclass(OsvService, VulnerabilityService)
    assert issubclass(PyPIService, VulnerabilityService)
    assert {"id", "description", "fix_versions", "aliases", "published"} <= set(
        VulnerabilityResult.__dataclass_fields__
    )
    assert ResolvedDependency and SkippedDependency and ServiceError
    assert issubclass(OfflineService, VulnerabilityService)


def test_offline_service_speaks_pip_audit():
    from packaging.version import Version
    from pip_audit._service.interface import ResolvedDependency

    service = OfflineService(open_database())
    _, results = service.query(ResolvedDependency(name="Jinja2", version=Version("2.10")))
    ids = {r.id for r in results}
    assert "PYSEC-2019-217" in ids
    assert all(isinstance(v, Version) for r in results for v in r.fix_versions)


class _Failing(BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self):
        type(self).hits += 1
        self.send_response(503)
        self.end_headers()
        self.wfile.write(b"unavailable")

    def log_message(self, *args):
        pass


@pytest.fixture
def failing_server():
    _Failing.hits = 0
    server = HTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/query"
    server.shutdown()
    server.server_close()


def test_failing_online_service_retries_then_falls_back(failing_server, tmp_path: Path):
    delays: list[float] = []
    service = online_service("osv", timeout=5, url=failing_server)
    deps = [Dependency(name="jinja2", version="2.10", source="r.txt", line=1)]
    db = open_database()
    result = lookup(deps, db=db, online=service, online_name="osv", sleep=delays.append)
    assert _Failing.hits == 3 and delays == [0.5, 1.0]  # exponential backoff
    assert result.source == "offline" and "osv service failed" in result.fallback_reason
    assert any(a.id == "PYSEC-2019-217" for a in result.advisories[("jinja2", "2.10")])


def test_failure_without_database_raises(failing_server):
    service = online_service("osv", timeout=5, url=failing_server)
    deps = [Dependency(name="jinja2", version="2.10", source="r.txt")]
    with pytest.raises(ServiceUnavailable):
        lookup(deps, db=None, online=service, sleep=lambda s: None)


@online
@pytest.mark.online
@pytest.mark.parametrize("name", ["osv", "pypi"])
def test_online_matches_offline(name):
    deps = [Dependency(name="jinja2", version="2.10", source="r.txt")]
    db = open_database()
    online_ids = {
        i
        for a in lookup(deps, db=db, online=online_service(name)).advisories[("jinja2", "2.10")]
        for i in a.ids
    }
    offline = lookup(deps, db=db).advisories[("jinja2", "2.10")]
    assert all(a.ids & online_ids for a in offline)
