"""The report model: findings unique by what they are about, fingerprints as the schema
documents them, fixes, and the finding that says nothing was checked."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
from helpers.report_samples import clean_report, sample_report
from qeguard.deps.audit import run_scan
from qeguard.render import render
from qeguard.render.json import schema
from qeguard.report import (
    DatabaseInfo,
    Finding,
    Fix,
    Inputs,
    Location,
    Report,
    Severity,
    Suppression,
    merge_findings,
)
from qeguard.rules import RuleId


def _vuln(path: str, line: int, *, package: str = "requests", **kw: object) -> Finding:
    return Finding(
        rule=RuleId.DEP_VULN,
        severity=Severity.HIGH,
        title="t",
        message="m",
        location=Location(path=path, line=line),
        package=package,
        version="2.19.1",
        details={"id": "PYSEC-2018-28"},
        **kw,  # type: ignore[arg-type]
    )


def _sast(line: int) -> Finding:
    return Finding(
        rule="QG-SAST-B602",
        severity=Severity.MEDIUM,
        title="B602",
        message="shell=True",
        location=Location(path="src/tool.py", line=line),
    )


def test_one_vulnerability_declared_in_several_files_is_one_finding() -> None:
    a = _vuln("requirements.txt", 4)
    b = _vuln("constraints.txt", 1, package="Requests")  # another spelling, same package
    c = _vuln("requirements.txt", 4)  # the same file read twice (default + `-r`)
    assert a.fingerprint == b.fingerprint == c.fingerprint
    report = replace(clean_report(), findings=(a, b, c))
    (only,) = report.findings
    assert only.location == Location(path="constraints.txt", line=1)
    assert only.also_at == (Location(path="requirements.txt", line=4),)
    # The order producers read files in does not change the result.
    assert replace(clean_report(), findings=(c, b, a)).findings == report.findings


def test_different_advisories_versions_and_rules_stay_apart() -> None:
    a = _vuln("requirements.txt", 4)
    other_id = replace(a, details={"id": "GHSA-x84v-xcm2-53pg"}, fingerprint="")
    other_version = replace(a, version="2.20.0", fingerprint="")
    unhashed = replace(a, rule=RuleId.DEP_UNHASHED, fingerprint="")
    fps = {f.fingerprint for f in (a, other_id, other_version, unhashed)}
    assert len(fps) == 4


def test_location_rules_keep_each_line() -> None:
    hits = [_sast(n) for n in (3, 9, 27, 30, 41, 58)]
    assert len({f.fingerprint for f in hits}) == 6
    report = replace(clean_report(), findings=tuple(hits))
    assert len(report.findings) == 6
    # A declaration rule (not about the package version) is per place too.
    pin = Finding(
        rule=RuleId.DEP_UNHASHED,
        severity=Severity.MEDIUM,
        title="t",
        message="m",
        package="requests",
        version="2.19.1",
        location=Location(path="requirements.txt", line=1),
    )
    elsewhere = replace(pin, location=Location(path="requirements-dev.txt", line=1), fingerprint="")
    assert pin.fingerprint != elsewhere.fingerprint


def test_unsafe_entries_of_one_list_stay_apart() -> None:
    entries = [
        Finding(
            rule=RuleId.INT_PATH,
            severity=Severity.CRITICAL,
            title="Unsafe manifest path",
            message=f"manifest entry {e!r} is unsafe",
            location=Location(path=".qeguard/manifests/middle.list"),
            tier="middle",
            details={"entry": e},
        )
        for e in ("../outside.py", "/etc/passwd", ".git/hooks/pre-commit")
    ]
    assert len(replace(clean_report(), findings=tuple(entries)).findings) == 3


def test_fingerprints_are_built_as_the_schema_says() -> None:
    described = schema()["$defs"]["finding"]["properties"]["fingerprint"]["description"]
    assert "SHA-256" in described and "U+001F" in described and "32 hex" in described

    def digest(*parts: str) -> str:
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]

    assert _vuln("x.txt", 1, package="Requests").fingerprint == digest(
        "QG-DEP-VULN", "requests", "2.19.1", "PYSEC-2018-28"
    )
    assert _sast(9).fingerprint == digest("QG-SAST-B602", "src/tool.py", "9", "", "", "", "")
    modified = sample_report().findings[0]
    assert modified.fingerprint == digest(
        "QG-INT-MODIFIED", "src/core/model.py", "", "core", "", "", ""
    )


def test_an_active_declaration_beats_a_suppressed_one() -> None:
    quiet = _vuln("a.txt", 1, suppressed=Suppression(reason="r"))
    loud = replace(_vuln("b.txt", 1), severity=Severity.CRITICAL)
    (merged,) = merge_findings([quiet, loud])
    assert merged.suppressed is None and merged.severity is Severity.CRITICAL
    assert [str(p) for p in merged.locations] == ["a.txt:1", "b.txt:1"]


def test_merging_reports_merges_their_findings_and_fixes() -> None:
    fix = Fix(package="requests", version="2.19.1", fixed="2.20.0", path="a.txt", applied=True)
    one = replace(clean_report(), findings=(_vuln("a.txt", 1),), fixes=(fix,))
    two = replace(clean_report(), command="deps", findings=(_vuln("b.txt", 2),))
    both = one.merged(two)
    assert len(both.findings) == 1 and len(both.findings[0].locations) == 2
    assert both.fixes == (fix,)


def test_json_round_trip_keeps_places_and_fixes() -> None:
    report = sample_report()
    doc = json.loads(render(report, "json"))
    jsonschema.validate(doc, schema())
    vuln = next(f for f in doc["findings"] if f["details"].get("id") == "PYSEC-2018-28")
    assert vuln["location"] == {"path": "constraints.txt", "line": 1}
    assert vuln["also_at"] == [{"path": "requirements.txt", "line": 3}]
    again = Report.from_dict(doc)
    assert again.fixes == report.fixes
    assert again.findings == tuple(report.sorted_findings())


def test_a_real_scan_of_includes_reports_each_advisory_once(tmp_path: Path) -> None:
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements.txt").write_text("-r requirements/base.txt\n")
    (tmp_path / "requirements" / "base.txt").write_text("requests==2.19.1\n")
    (tmp_path / "requirements-dev.txt").write_text("requests==2.19.1\n")
    report = run_scan(tmp_path, None).report
    vulns = [f for f in report.findings if f.rule == RuleId.DEP_VULN]
    assert vulns
    assert len({f.details["id"] for f in vulns}) == len(vulns)  # one per advisory
    for f in vulns:
        assert {str(p) for p in f.locations} == {
            "requirements-dev.txt:1",
            "requirements/base.txt:1",
        }
    assert len({f.fingerprint for f in report.findings}) == len(report.findings)


def _scan(**kw: object) -> Report:
    fields: dict[str, object] = {
        "command": "deps",
        "database": DatabaseInfo(source="offline", name="db", records=10),
        "inputs": Inputs(files=("requirements.txt",), packages=1, dependencies=1),
    }
    return replace(clean_report(), **{**fields, **kw})  # type: ignore[arg-type]


def test_nothing_checked_is_a_failing_finding() -> None:
    assert _scan().verdict.value == "pass"
    empty_inputs = _scan(inputs=Inputs())
    (f,) = empty_inputs.findings
    assert f.rule == RuleId.DEP_NOTHING_CHECKED and "no dependency file" in f.message
    assert empty_inputs.verdict.value == "fail"
    # It fails whatever the threshold: a policy that fails only on critical still fails.
    strict = _scan(inputs=Inputs(), fail_on=Severity.CRITICAL)
    assert strict.findings[0].severity is Severity.CRITICAL and strict.exit_code == 1
    no_records = _scan(database=DatabaseInfo(source="offline", name="db", records=0))
    assert "holds no records" in no_records.findings[0].message
    assert no_records.verdict.value == "fail"
    # The installed environment counts as input even without files.
    env = _scan(inputs=Inputs(packages=3, dependencies=3, services=("offline",)))
    assert env.findings == ()
    # A verify run records no inputs and is not a scan that checked nothing.
    assert clean_report().findings == ()
    # Saved and re-read, it is still one finding.
    again = Report.from_dict(json.loads(render(empty_inputs, "json")))
    assert len(again.findings) == 1
