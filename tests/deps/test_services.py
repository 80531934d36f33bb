"""pip-audit integration: the names we import, the offline service, retries and fallback."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from helpers import DATA
from qeguard.deps.database import open_database
from qeguard.deps.model import Dependency
from qeguard.deps.services import lookup
from qeguard.deps.services.interface import ServiceUnavailable
from qeguard.deps.services.offline import affecting, offline_advisories
from qeguard.deps.services.pip_audit import online_service, to_advisories


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


def test_offline_and_online_conversions_agree():
    """The offline path builds advisories from records directly; the online path converts
    pip-audit results. Fed the same records, the two must give the same advisories."""
    from pip_audit._service.interface import VulnerabilityID, VulnerabilityResult

    db = open_database()
    for name, version in [("jinja2", "2.10"), ("requests", "2.19.0"), ("django", "3.2")]:
        records = affecting(db, name, version)
        assert records
        results = [
            VulnerabilityResult(
                id=VulnerabilityID(r.id),
                description=r.summary or "N/A",
                fix_versions=list(r.fixed_for(name)),
                aliases={VulnerabilityID(a) for a in r.aliases},
                published=None,
            )
            for r in records
        ]
        online = to_advisories(results, db)
        offline = offline_advisories(db, [(name, version)])[(name, version)]
        strip = [(a.id, a.aliases, a.fix_versions, a.severity, a.cvss, a.summary) for a in online]
        assert strip == [
            (a.id, a.aliases, a.fix_versions, a.severity, a.cvss, a.summary) for a in offline
        ]
    assert any(
        a.id == "PYSEC-2019-217"
        for a in offline_advisories(db, [("jinja2", "2.10")])[("jinja2", "2.10")]
    )


def test_offline_lookup_does_not_import_pip_audit():
    import subprocess
    import sys

    code = (
        "import sys; from qeguard.deps.audit import run_scan; from pathlib import Path; "
        "run_scan(Path(sys.argv[1]), None); print('pip_audit' in sys.modules)"
    )
    repo = DATA / "deps" / "includes"
    out = subprocess.run(
        [sys.executable, "-c", code, str(repo)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


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
