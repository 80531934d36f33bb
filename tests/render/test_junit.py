"""JUnit read by junitparser: a case per tier and per package, failures that carry ids,
and checks that did not run skipped, never passed."""

from __future__ import annotations

from dataclasses import replace

from helpers.report_samples import clean_report, sample_report
from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite
from qeguard.render import render
from qeguard.report import DatabaseInfo, Finding, Inputs, Location, Report, Severity
from qeguard.rules import RuleId


def _suites(report: Report) -> dict[str, list[TestCase]]:
    xml = JUnitXml.fromstring(render(report, "junit"))
    out: dict[str, list[TestCase]] = {}
    for suite in xml:
        assert isinstance(suite, TestSuite)
        out[str(suite.name)] = list(suite)
    return out


def _state(case: TestCase) -> str:
    kinds = {type(r) for r in case.result}
    if Failure in kinds:
        return "failed"
    if Skipped in kinds:
        return "skipped"
    return "passed"


def test_a_case_per_tier_and_per_package_and_failures_name_their_ids() -> None:
    report = sample_report()
    suites = _suites(report)
    integrity = {str(c.name): c for c in suites["qeguard.integrity"]}
    assert set(integrity) == {"trust and signatures", "tier core", "tier middle", "tier outer"}
    assert _state(integrity["tier core"]) == "failed"
    # The outer tier fails on its unsafe manifest path; its low (warn) change is only listed.
    outer = next(r for r in integrity["tier outer"].result if isinstance(r, Failure))
    assert str(outer.message) == "1 finding: QG-INT-PATH"
    assert "docs/guide.md" in str(integrity["tier outer"].system_out)
    assert _state(integrity["tier middle"]) == "passed"  # medium, below fail_on high
    assert "src/middle/new.py" in str(integrity["tier middle"].system_out)
    core_failure = next(r for r in integrity["tier core"].result if isinstance(r, Failure))
    assert "QG-INT-MISSING" in str(core_failure.message)
    assert "QG-INT-MISSING" in str(core_failure.type)

    deps = {str(c.name): c for c in suites["qeguard.dependencies"]}
    assert {"requests 2.19.0", "pyyaml 5.3", "numpy", "jinja2 2.10"} <= set(deps)
    failure = next(r for r in deps["requests 2.19.0"].result if isinstance(r, Failure))
    assert str(failure.message) == "1 finding: PYSEC-2018-28"
    assert "CVE-2018-18074" in str(failure.text)
    assert "https://osv.dev/vulnerability/PYSEC-2018-28" in str(failure.text)
    assert "constraints.txt:1, requirements.txt:3" in str(failure.text)
    assert _state(deps["jinja2 2.10"]) == "passed"  # suppressed: listed, not failed
    assert "not reachable" in str(deps["jinja2 2.10"].system_out)
    # 4 packages checked, 3 with versions seen in findings: one passed without findings.
    assert _state(deps["1 other packages checked without findings"]) == "passed"
    assert _state(deps["online vulnerability lookup"]) == "skipped"


def test_checks_that_did_not_run_are_skipped() -> None:
    verify = _suites(clean_report())
    assert [_state(c) for c in verify["qeguard.dependencies"]] == ["skipped"]
    assert [_state(c) for c in verify["qeguard.sast"]] == ["skipped"]
    assert all(_state(c) == "passed" for c in verify["qeguard.integrity"])
    deps_only = replace(
        clean_report(),
        command="deps",
        inputs=Inputs(files=("r.txt",), packages=2, dependencies=2, services=("osv", "bandit")),
        database=DatabaseInfo(source="osv", name="osv"),
    )
    suites = _suites(deps_only)
    assert [_state(c) for c in suites["qeguard.integrity"]] == ["skipped"]
    assert [_state(c) for c in suites["qeguard.sast"]] == ["passed"]  # bandit ran, found nothing
    assert "online vulnerability lookup" not in {
        str(c.name) for c in suites["qeguard.dependencies"]
    }
    xml = JUnitXml.fromstring(render(deps_only, "junit"))
    assert xml.skipped == 1 and xml.failures == 0


def test_many_advisories_of_one_pin_are_one_failing_case_listing_every_id() -> None:
    vulns = tuple(
        Finding(
            rule=RuleId.DEP_VULN,
            severity=Severity.HIGH,
            title="t",
            message=f"advisory {i}",
            package="django",
            version="2.2.0",
            location=Location(path="requirements.txt", line=1),
            details={"id": f"PYSEC-2022-{i}"},
        )
        for i in range(46)
    )
    suites = _suites(replace(clean_report(), command="deps", findings=vulns))
    (case,) = [c for c in suites["qeguard.dependencies"] if str(c.name) == "django 2.2.0"]
    failure = next(r for r in case.result if isinstance(r, Failure))
    assert str(failure.message).startswith("46 findings: PYSEC-2022-0, PYSEC-2022-1")
    assert str(failure.message).endswith("+36")
    assert len(str(failure.text).splitlines()) == 46


def test_sast_findings_are_cases_per_file() -> None:
    hits = tuple(
        Finding(
            rule="QG-SAST-B602",
            severity=Severity.HIGH,
            title="B602",
            message="shell=True",
            location=Location(path=path, line=line),
        )
        for path, line in (("src/a.py", 3), ("src/a.py", 9), ("src/b.py", 1))
    )
    suites = _suites(replace(clean_report(), command="deps", findings=hits))
    cases = {str(c.name): c for c in suites["qeguard.sast"]}
    assert set(cases) == {"src/a.py", "src/b.py"}
    failure = next(r for r in cases["src/a.py"].result if isinstance(r, Failure))
    assert str(failure.message) == "2 findings: QG-SAST-B602"
