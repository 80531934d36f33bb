"""SARIF as GitHub code scanning reads it: a rule per advisory, severities that agree with
qeguard's, the 25,000-result cap, and the category left to the upload step."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from helpers.report_samples import clean_report, sample_report
from qeguard.render import RenderOptions, render
from qeguard.render.sarif import MAX_RESULTS, band
from qeguard.report import SEVERITY_ORDER, Finding, Location, Report, Severity
from qeguard.rules import RULES, RuleId


def _run(report: Report, options: RenderOptions | None = None) -> dict[str, Any]:
    run: dict[str, Any] = json.loads(render(report, "sarif", options or RenderOptions()))["runs"][0]
    return run


def _rules(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in run["tool"]["driver"]["rules"]}


def test_each_advisory_is_a_rule_with_its_ids_and_link() -> None:
    run = _run(sample_report())
    rules = _rules(run)
    rule = rules["PYSEC-2018-28"]
    assert rule["helpUri"] == "https://osv.dev/vulnerability/PYSEC-2018-28"
    assert rule["shortDescription"]["text"] == "PYSEC-2018-28: credentials leak on redirect"
    assert rule["properties"]["aliases"] == ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"]
    assert (
        "[CVE-2018-18074](https://osv.dev/vulnerability/CVE-2018-18074)"
        in (rule["help"]["markdown"])
    )
    assert "Fixed in: 2.20.0" in rule["help"]["text"]
    assert "vulnerability" in rule["properties"]["tags"]
    # The CVSS base score of the record (7.5) agrees with qeguard's high, so it is used.
    assert rule["properties"]["security-severity"] == "7.5"
    result = next(r for r in run["results"] if r["ruleId"] == "PYSEC-2018-28")
    assert result["properties"]["qeguard-rule"] == "QG-DEP-VULN"
    assert result["properties"]["aliases"] == ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"]
    assert result["message"]["text"].startswith(
        "requests==2.19.0: PYSEC-2018-28 (CVE-2018-18074, GHSA-x84v-xcm2-53pg): credentials"
    )
    # Its second declaration is a related location.
    (related,) = result["relatedLocations"]
    assert related["physicalLocation"]["artifactLocation"]["uri"] == "requirements.txt"
    assert related["physicalLocation"]["region"] == {"startLine": 3}
    # Without a score the severity's own score is used (unknown ranks with high).
    assert rules["GHSA-8q59-q68h-6hv4"]["properties"]["security-severity"] == "7.0"


def test_rule_severity_always_agrees_with_the_findings() -> None:
    report = sample_report()
    run = _run(report)
    rules = run["tool"]["driver"]["rules"]
    by_fp = {f.fingerprint: f for f in report.findings}
    for res in run["results"]:
        f = by_fp[res["partialFingerprints"]["qeguard/v2"]]
        props = rules[res["ruleIndex"]]["properties"]
        if "security-severity" in props:
            shown = band(float(props["security-severity"]))
            assert shown.rank == f.severity.rank, (res["ruleId"], f.severity)
            assert "security" in props["tags"]
        else:
            assert "security" not in props["tags"]


def test_a_warn_tier_change_is_a_warning_in_code_scanning_too() -> None:
    run = _run(sample_report())
    rules = _rules(run)
    core = rules["QG-INT-MODIFIED"]
    outer = rules["QG-INT-MODIFIED/low"]
    assert core["properties"]["security-severity"] == "8.0"
    assert outer["properties"]["security-severity"] == "3.0"
    assert outer["defaultConfiguration"]["level"] == "warning"
    result = next(r for r in run["results"] if r["ruleId"] == "QG-INT-MODIFIED/low")
    assert result["level"] == "warning"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "docs/guide.md"
    )


def test_non_security_rules_are_not_security_alerts() -> None:
    outdated = Finding(
        rule=RuleId.DEP_OUTDATED,
        severity=Severity.INFO,
        title="t",
        message="requests 2.19.0 is behind 2.32.3",
        package="requests",
        version="2.19.0",
        location=Location(path="requirements.txt", line=3),
    )
    lookup = replace(outdated, severity=Severity.LOW, package=None, version=None, fingerprint="")
    run = _run(replace(clean_report(), findings=(outdated, lookup)))
    (rule,) = run["tool"]["driver"]["rules"]  # one rule: results are rated by their level
    assert rule["id"] == "QG-DEP-OUTDATED"
    assert "security" not in rule["properties"]["tags"]
    assert "security-severity" not in rule["properties"]
    assert sorted(r["level"] for r in run["results"]) == ["note", "warning"]
    assert not RULES[RuleId.DEP_OUTDATED].security


def test_results_are_capped_with_a_notification() -> None:
    n = MAX_RESULTS + 40
    findings = tuple(
        Finding(
            rule=RuleId.INT_MODIFIED,
            severity=SEVERITY_ORDER[i % len(SEVERITY_ORDER)],
            title="t",
            message="m",
            tier="core",
            location=Location(path=f"src/f{i}.py"),
        )
        for i in range(n)
    )
    report = replace(clean_report(), findings=findings)
    # (test_large.py validates a capped run against the SARIF schema)
    run = _run(report)
    assert len(run["results"]) == MAX_RESULTS
    assert run["properties"]["leftOut"] == 40
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert note["message"]["text"].startswith(f"40 of {n} results left out")
    # Most severe first: nothing left out is more severe than anything kept.
    kept = {r["partialFingerprints"]["qeguard/v2"] for r in run["results"]}
    left = [f for f in report.findings if f.fingerprint not in kept]
    worst_left = max(f.severity.rank for f in left)
    assert all(Severity(r["properties"]["severity"]).rank >= worst_left for r in run["results"])
    assert len(kept) == MAX_RESULTS  # and no duplicate fingerprints


def test_category_only_when_asked() -> None:
    assert "automationDetails" not in _run(sample_report())
    run = _run(sample_report(), RenderOptions(sarif_category="qeguard-deps/py3.12"))
    assert run["automationDetails"] == {"id": "qeguard-deps/py3.12/"}


def test_inputs_database_and_fixes_are_in_the_run() -> None:
    props = _run(sample_report())["properties"]
    assert props["database"]["name"] == "pypa/advisory-database"
    assert props["inputs"]["packages"] == 4
    assert {x["fixed"] for x in props["fixes"]} == {"2.20.0", "5.4"}
