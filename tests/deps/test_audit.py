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


def test_vulnerability_details_keep_the_report_contract():
    findings, _ = _scan([_pin("urllib3", "1.26.4"), _pin("jinja2", "2.10")])
    vulns = [f for f in findings if f.rule == "QG-DEP-VULN"]
    for f in vulns:
        d = f.details
        assert set(d) >= {"id", "aliases", "fix_versions", "cvss", "score", "severity_source"}
        assert d["aliases"] == sorted(d["aliases"])
        assert d["url"] == f"https://osv.dev/vulnerability/{d['id']}"
        assert d["description"] and "\n" not in f.message
    scored = [f for f in vulns if f.details["severity_source"] == "cvss_v3"]
    assert scored and all(isinstance(f.details["score"], float) for f in scored)
    unrated = [f for f in vulns if f.details["severity_source"] == "none"]
    assert unrated and all(
        f.severity is Severity.UNKNOWN and f.details["score"] is None for f in unrated
    )


def test_the_policy_decides_where_unknown_severity_falls():
    pin = [_pin("py", "1.11.0")]  # PYSEC-2022-42969 has no rating at all
    default, _ = _scan(pin)
    assert {f.severity for f in default if f.rule == "QG-DEP-VULN"} == {Severity.UNKNOWN}
    low, _ = _scan(pin, DepsPolicy.from_table({"unknown_severity": "low"}))
    assert {f.severity for f in low if f.rule == "QG-DEP-VULN"} == {Severity.LOW}
    with pytest.raises(ConfigError, match="unknown_severity"):
        DepsPolicy.from_table({"unknown_severity": "dire"})
    with pytest.raises(ConfigError, match="db_max_age_days"):
        DepsPolicy.from_table({"db_max_age_days": -1})


def test_ignore_vuln_is_local_to_one_run(tmp_path: Path):
    (tmp_path / "requirements.txt").write_text("jinja2==2.10\n")
    plain = run_scan(tmp_path, None, today=TODAY).report
    ignored = run_scan(tmp_path, None, today=TODAY, ignore_vulns=["CVE-2019-10906"]).report
    [hit] = [f for f in ignored.findings if f.details.get("id") == "PYSEC-2019-217"]
    assert hit.suppressed is not None and "--ignore-vuln CVE-2019-10906" in hit.suppressed.reason
    assert len(ignored.active_findings) == len(plain.active_findings) - 1


def test_strict_fails_on_what_cannot_be_checked(tmp_path: Path):
    (tmp_path / "requirements.txt").write_text("git+https://example.com/x.git#egg=x\n")
    lenient = run_scan(tmp_path, None).report
    strict = run_scan(tmp_path, None, strict=True).report
    assert lenient.exit_code == 0 and strict.exit_code == 1
    [f] = [f for f in strict.findings if f.rule == "QG-DEP-UNSCANNABLE"]
    assert f.severity is strict.fail_on


def test_a_record_that_cannot_be_evaluated_is_reported(tmp_path: Path):
    """binderhub's PYSEC-2021-371 has a `fixed` that is not PEP 440 and no versions list:
    not a vulnerability finding for every release, but a finding that says so."""
    (tmp_path / "requirements.txt").write_text("binderhub==0.2.0\nsteam==1.0\n")
    report = run_scan(tmp_path, None, db_path=DEPS_DATA / "osv", today=TODAY).report
    rules = {(f.rule, f.details.get("id")) for f in report.findings}
    assert ("QG-DEP-UNEVALUATED", "PYSEC-2021-371") in rules
    assert ("QG-DEP-UNEVALUATED", "PYSEC-2019-125") in rules
    assert not any(r == "QG-DEP-VULN" for r, _ in rules)
    f = next(f for f in report.findings if f.details.get("id") == "PYSEC-2021-371")
    assert "0.2.0-n653" in f.message and f.location.line == 1


def test_report_inputs_and_fixes(tmp_path: Path):
    (tmp_path / "requirements.txt").write_text("-r base.txt\nrequests==2.19.0\n")
    (tmp_path / "base.txt").write_text("jinja2==2.10\nflask>=1.0\n")
    report = run_scan(tmp_path, None, today=TODAY).report
    assert report.inputs.files == ("requirements.txt", "base.txt")
    assert report.inputs.dependencies == 3 and report.inputs.packages == 2
    assert report.inputs.services == ("offline",)
    fixes = {(f.package, f.version, f.fixed, f.path, f.applied) for f in report.fixes}
    assert fixes == {
        ("requests", "2.19.0", "2.31.0", "requirements.txt", False),
        ("jinja2", "2.10", "2.11.3", "base.txt", False),
    }
    assert Report.from_dict(report.to_dict()).fixes == report.fixes


@pytest.mark.parametrize(
    ("license", "allow", "deny", "ok"),
    [
        ("MIT OR GPL-3.0-only", [], ["GPL-3.0-only"], True),  # OR: the user picks MIT
        ("MIT AND GPL-3.0-only", [], ["GPL-3.0-only"], False),
        ("GPL-3.0-only", [], ["GPL-3.0-only"], False),
        ("mit", ["MIT"], [], True),  # SPDX ids are case-insensitive
        ("Apache-2.0 WITH LLVM-exception", ["Apache-2.0"], [], True),
        ("(MIT OR BSD-3-Clause) AND Zlib", ["MIT", "Zlib"], [], True),
        ("Proprietary", ["MIT"], [], False),
    ],
)
def test_license_expressions_with_the_spdx_library(license, allow, deny, ok):
    policy = DepsPolicy.from_table({"licenses": {"allow": allow, "deny": deny}})
    findings, _ = _scan([_pin("a", "1", license=license)], policy)
    assert (not [f for f in findings if f.rule == "QG-DEP-LICENSE"]) is ok


def test_license_classifiers_map_to_spdx():
    from email.message import Message

    from qeguard.deps.sources.environment import license_of

    for classifier, spdx_id in [
        ("License :: OSI Approved :: MIT License", "MIT"),
        ("License :: OSI Approved :: Apache Software License", "Apache-2.0"),
    ]:
        meta = Message()
        meta["Classifier"] = classifier
        meta["License"] = "see LICENSE file"
        assert license_of(meta) == spdx_id
    allow = DepsPolicy.from_table({"licenses": {"allow": ["MIT", "Apache-2.0"]}})
    findings, _ = _scan(
        [_pin("a", "1", license="MIT"), _pin("b", "1", license="Apache-2.0")], allow
    )
    assert findings == []
    both = Message()
    both["Classifier"] = "License :: OSI Approved :: MIT License"
    both["Classifier"] = "License :: OSI Approved :: GNU General Public License v3 (GPLv3)"
    assert license_of(both) == "MIT OR GPL-3.0-only"
    family = Message()
    family["Classifier"] = "License :: OSI Approved :: BSD License"
    assert license_of(family) == "BSD License"  # names no single license: kept as text
