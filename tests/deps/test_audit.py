"""The scan: findings from real inputs against the bundled snapshot, and the [deps] policy."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from helpers import DATA
from qeguard.deps.audit import evaluate, run_scan, scan_repository
from qeguard.deps.config import DepsPolicy
from qeguard.deps.database import open_database
from qeguard.deps.model import Dependency, TargetEnvironment
from qeguard.deps.services import lookup
from qeguard.errors import ConfigError
from qeguard.integrity.policy import parse_policy
from qeguard.report import Report, Severity

DEPS_DATA = DATA / "deps"
LINUX = TargetEnvironment.for_target("3.11", "linux")
TODAY = date(2024, 11, 1)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qg-cache"))


def _pin(name, version, **kw):
    return Dependency(
        name=name,
        version=version,
        specifier=f"=={version}",
        source="requirements.txt",
        line=kw.pop("line", 1),
        **kw,
    )


def _scan(deps, policy=None):
    db = open_database()
    result = lookup(deps, db=db)
    return evaluate(deps, result.advisories, policy or DepsPolicy(), db=db, today=TODAY)


def test_known_vulnerable_pin_is_found_with_fix_and_location():
    findings, suggestions = _scan([_pin("Jinja2", "2.10", line=7)])
    vulns = [f for f in findings if f.rule == "QG-DEP-VULN"]
    assert vulns and all(f.location.line == 7 for f in vulns)
    ids = {f.details["id"] for f in vulns}
    assert "PYSEC-2019-217" in ids
    new = suggestions[("requirements.txt", "jinja2", "2.10")]
    assert all(f"to {new}" in f.fix for f in vulns)
    # The suggestion is the lowest version no record affects.
    db = open_database()
    assert not any(r.affects("jinja2", new) for r in db.records_for("jinja2"))


def test_cvss_vector_sets_severity():
    findings, _ = _scan([_pin("py", "1.11.0"), _pin("urllib3", "1.24.1")])
    by_id = {f.details["id"]: f for f in findings if f.rule == "QG-DEP-VULN"}
    assert by_id["PYSEC-2022-42969"].severity is Severity.UNKNOWN  # no vector in the record
    assert any(f.details["cvss"] and f.severity is not Severity.UNKNOWN for f in by_id.values())


def test_clean_pin_has_no_findings():
    findings, _ = _scan([_pin("requests", "2.32.3")])
    assert findings == []


def test_range_check_reports_lower_bound():
    dep = Dependency(
        name="requests", specifier=">=2.0", source="pyproject.toml", line=3, kind="pyproject"
    )
    findings, _ = _scan([dep])
    (f,) = findings
    # The 2024-10-10 snapshot's last requests advisory (PYSEC-2023-74) is fixed in 2.31.0.
    assert f.rule == "QG-DEP-RANGE" and f.fix == "raise the lower bound: requests>=2.31.0"
    assert "PYSEC-2023-74" in f.details["ids"]
    findings, _ = _scan(
        [
            Dependency(
                name="requests", specifier=">=2.31.0", source="pyproject.toml", kind="pyproject"
            )
        ]
    )
    assert findings == []


def test_ignore_suppresses_and_expired_ignore_counts_again():
    policy = DepsPolicy.from_table(
        {
            "ignore": [
                {"id": "CVE-2019-10906", "reason": "sandbox not used", "expires": date(2025, 1, 1)}
            ]
        }
    )
    findings, _ = _scan([_pin("jinja2", "2.10")], policy)
    hit = next(
        f for f in findings if f.rule == "QG-DEP-VULN" and f.details["id"] == "PYSEC-2019-217"
    )
    assert hit.suppressed is not None and hit.suppressed.reason == "sandbox not used"
    expired = DepsPolicy.from_table(
        {"ignore": [{"id": "PYSEC-2019-217", "reason": "old", "expires": "2024-01-01"}]}
    )
    findings, _ = _scan([_pin("jinja2", "2.10")], expired)
    hit = next(
        f for f in findings if f.rule == "QG-DEP-VULN" and f.details["id"] == "PYSEC-2019-217"
    )
    assert hit.suppressed is None and hit.details["ignore_expired"] == "2024-01-01"
    assert any(f.rule == "QG-DEP-IGNORE-EXPIRED" for f in findings)


def test_policy_errors_are_config_errors():
    with pytest.raises(ConfigError, match=r"ignore\[0\]\.reason"):
        DepsPolicy.from_table({"ignore": [{"id": "PYSEC-1"}]}, where=".qeguard/policy.toml")
    with pytest.raises(ConfigError, match="unknown key"):
        DepsPolicy.from_table({"requre_pins": True})
    with pytest.raises(ConfigError, match="fail_on"):
        DepsPolicy.from_table({"fail_on": "severe"})


def test_require_pins_hashes_and_licenses():
    policy = DepsPolicy.from_table(
        {"require_pins": True, "require_hashes": True, "licenses": {"deny": ["GPL-3.0-only"]}}
    )
    deps = [
        Dependency(name="flask", specifier=">=2", source="requirements.txt", line=2),
        _pin("requests", "2.32.3"),
        _pin("gplthing", "1.0", license="GPL-3.0-only"),
    ]
    findings, _ = _scan(deps, policy)
    rules = sorted(f.rule for f in findings)
    assert rules == [
        "QG-DEP-LICENSE",
        "QG-DEP-RANGE",
        "QG-DEP-UNHASHED",
        "QG-DEP-UNHASHED",
        "QG-DEP-UNPINNED",
    ]
    allow = DepsPolicy.from_table({"licenses": {"allow": ["MIT", "BSD-3-Clause"]}})
    findings, _ = _scan(
        [_pin("a", "1", license="MIT OR Apache-2.0"), _pin("b", "1", license="Proprietary")], allow
    )
    assert [f.package for f in findings] == ["b"]


@pytest.mark.parametrize(
    "rel",
    [
        "poetry/poetry.lock",
        "pipenv/Pipfile.lock",
        "uv/uv.lock",
        "pylock/pylock.toml",
        "hashed/requirements.txt",
    ],
)
def test_real_inputs_scan_end_to_end(rel):
    result = run_scan(DEPS_DATA, None, paths=[DEPS_DATA / rel], target=LINUX, today=TODAY)
    report = result.report
    assert report.database is not None and report.database.records == 2661
    assert report.database.date == "2024-10-10" and report.database.age_days == 22
    data = report.to_dict()
    assert Report.from_dict(data).to_dict()["findings"] == data["findings"]
    for f in report.findings:
        if f.rule == "QG-DEP-VULN":
            assert f.location.path == rel and f.location.line


def test_poetry_lock_known_findings():
    report = scan_repository(
        DEPS_DATA, None, paths=[DEPS_DATA / "poetry/poetry.lock"], target=LINUX, today=TODAY
    )
    found = {(f.package, f.details.get("id")) for f in report.findings}
    assert ("certifi", "PYSEC-2023-135") in found
    assert report.verdict.value == "fail"


def test_stale_database_warning_and_fail_on_from_policy(tmp_path: Path):
    shutil.copy(DEPS_DATA / "hashed/requirements.txt", tmp_path / "requirements.txt")
    policy = parse_policy(
        '[[tiers]]\nname = "core"\npatterns = ["src/**"]\n[deps]\nfail_on = "critical"\n'
    )
    report = scan_repository(tmp_path, policy, target=LINUX, today=date(2025, 1, 1))
    assert report.fail_on is Severity.CRITICAL
    stale = [f for f in report.findings if f.rule == "QG-DEP-DB"]
    assert stale and "83 days" in stale[0].title
