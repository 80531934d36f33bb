"""Every renderer over the same reports: they must agree, validate and escape."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest
from helpers import DATA
from helpers.report_samples import HOSTILE_PATH, clean_report, sample_report
from qeguard.render import FORMATS, render
from qeguard.render.json import schema
from qeguard.report import Finding, Report, Severity
from qeguard.rules import RULES

SARIF_SCHEMA = json.loads((DATA / "sarif-schema-2.1.0.json").read_text("utf-8"))


def _fingerprints(report: Report, *, active: bool | None = None) -> set[str]:
    return {
        f.fingerprint for f in report.findings if active is None or (f.suppressed is None) == active
    }


@pytest.fixture(params=["sample", "clean"])
def report(request: pytest.FixtureRequest) -> Report:
    return sample_report() if request.param == "sample" else clean_report()


def test_every_format_renders_non_empty(report: Report) -> None:
    for fmt in FORMATS:
        assert render(report, fmt).strip(), fmt


def test_all_formats_agree_on_the_findings() -> None:
    report = sample_report()
    expected = _fingerprints(report)
    assert len(expected) == len(report.findings)  # the sample has no duplicate identities

    data = json.loads(render(report, "json"))
    assert {f["fingerprint"] for f in data["findings"]} == expected

    sarif = json.loads(render(report, "sarif"))
    results = sarif["runs"][0]["results"]
    assert {r["partialFingerprints"]["qeguard/v1"] for r in results} == expected
    assert {r["partialFingerprints"]["qeguard/v1"] for r in results if "suppressions" in r} == (
        _fingerprints(report, active=False)
    )

    junit = render(report, "junit")
    assert set(re.findall(r"fingerprint=([0-9a-f]+)", junit)) == expected

    html = render(report, "html")
    assert set(re.findall(r'data-fingerprint="([0-9a-f]+)"', html)) == expected

    # Text and Markdown show no fingerprints; they agree on counts and on what is listed.
    counts = report.counts
    summary = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)
    text = render(report, "text")
    md = render(report, "markdown")
    assert summary in text and summary in md and summary in html
    assert data["counts"] == counts
    assert sarif["runs"][0]["properties"]["counts"] == counts
    assert "Suppressed (2)" in text and "Suppressed (2)" in md and "Suppressed (2)" in html
    n_active = len(report.active_findings)
    md_rows = [line for line in md.splitlines() if line.startswith("| ")]
    # header row + one row per finding in the findings table, after the tier table
    findings_table = md.split("### Findings", 1)[1].split("<details>", 1)[0]
    assert len([ln for ln in findings_table.splitlines() if ln.startswith("| ")]) == n_active + 1
    assert md_rows
    for f in report.active_findings:
        assert f.rule in text
    assert data["verdict"] == "fail" and "Verdict: FAIL" in text and "FAIL" in md


def test_json_validates_against_the_shipped_schema(report: Report) -> None:
    validator = jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(json.loads(render(report, "json")))


def test_schema_rejects_what_the_model_would_not_write() -> None:
    data = json.loads(render(sample_report(), "json"))
    data["findings"][0]["severity"] = "urgent"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema())
    data = json.loads(render(sample_report(), "json"))
    del data["counts"]["high"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema())


def test_json_round_trip_is_exact(report: Report) -> None:
    text = render(report, "json")
    again = Report.from_dict(json.loads(text))
    assert render(again, "json") == text
    assert again.findings == tuple(report.sorted_findings())


def test_sarif_validates_against_the_official_schema(report: Report) -> None:
    jsonschema.validate(json.loads(render(report, "sarif")), SARIF_SCHEMA)


def test_sarif_rules_results_and_locations() -> None:
    report = sample_report()
    sarif = json.loads(render(report, "sarif"))
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted({f.rule for f in report.findings})
    for r in rules:
        assert r["shortDescription"]["text"] and r["fullDescription"]["text"]
        assert r["help"]["text"] and r["help"]["markdown"]
        sev = r["properties"]["security-severity"]
        assert isinstance(sev, str) and float(sev) == RULES[r["id"]].security_severity
    by_fp = {f.fingerprint: f for f in report.findings}
    for res in run["results"]:
        f = by_fp[res["partialFingerprints"]["qeguard/v1"]]
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"] == f.rule
        failing = f.severity.rank >= report.fail_on.rank
        assert (res["level"] == "error") == failing
        loc = res["locations"][0]["physicalLocation"]
        uri = loc["artifactLocation"]["uri"]
        assert loc["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert not uri.startswith(("/", "..")) and "://" not in uri
        if f.location and f.location.line:
            assert loc["region"]["startLine"] == f.location.line
        if f.location is None and f.tier:
            assert uri == f".qeguard/manifests/{f.tier}.list"
        if f.location is None and f.tier is None:
            assert uri == ".qeguard/policy.toml"
        if f.rule == "QG-INT-PATH":  # never point outside the repository
            assert uri == ".qeguard/manifests/outer.list"
            assert "../../etc/passwd" in res["message"]["text"]
        if f.suppressed:
            assert res["suppressions"][0]["justification"] == f.suppressed.reason
    hostile = next(r for r in run["results"] if "script" in json.dumps(r["locations"]))
    uri = hostile["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert "<" not in uri and "\n" not in uri and "%0A" in uri


def test_junit_has_one_testcase_per_check_and_failures_for_failing_findings() -> None:
    report = sample_report()
    root = ET.fromstring(render(report, "junit"))
    cases = root.findall(".//testcase")
    names = [c.get("name", "").split()[0] for c in cases]
    assert len(names) == len(set(names))
    assert set(names) >= {f.rule for f in report.findings}
    failed = {c.get("name", "").split()[0] for c in cases if c.find("failure") is not None}
    assert failed == {f.rule for f in report.findings if report.is_failing(f)}
    assert int(root.get("tests", "0")) == len(cases)
    assert int(root.get("failures", "0")) == len(failed)
    verify_only = Report(**{**_fields(clean_report()), "command": "verify"})
    vnames = [
        c.get("name", "") for c in ET.fromstring(render(verify_only, "junit")).iter("testcase")
    ]
    assert vnames and all(not n.startswith("QG-DEP") for n in vnames)
    assert ET.fromstring(render(verify_only, "junit")).get("failures") == "0"


def _fields(report: Report) -> dict[str, object]:
    return {name: getattr(report, name) for name in Report.__dataclass_fields__}


def test_junit_survives_control_characters() -> None:
    f = Finding(
        rule="QG-INT-MODIFIED",
        severity=Severity.HIGH,
        title="t\x00\x1b",
        message="a\x0bb\udcff",
        tier="core",
    )
    report = Report(**{**_fields(clean_report()), "findings": (f,)})
    root = ET.fromstring(render(report, "junit"))
    assert root.find(".//failure") is not None


def test_html_is_self_contained() -> None:
    html = render(sample_report(hostile=False), "html")
    assert not re.search(r"\b(https?|ftp|wss?|file):", html, re.I)
    assert not re.search(r"(=|url\()\s*[\"']?\s*data:", html, re.I)
    assert not re.search(r"[\"'(=]\s*//", html)  # no scheme-relative URLs either
    assert not re.search(r"\b(src|href|action|srcset)\s*=", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html
    assert html.count("<script") == 1


def test_html_escapes_hostile_text() -> None:
    html = render(sample_report(), "html")
    assert "<script>alert" not in html
    assert "<img" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "\x1b" not in html
    assert html.count("<script") == 1


def test_html_is_readable_without_js_and_has_filters() -> None:
    html = render(sample_report(), "html")
    assert '<div id="filters" hidden>' in html  # shown only when the script runs
    for name in ("severity", "rule", "tier", "package"):
        assert f'<select name="{name}"' in html
    assert html.count("<tr data-severity=") == len(sample_report().active_findings)
    assert (
        "<svg" in html and "Findings by severity" in html and "Findings by tier / package" in html
    )


def test_markdown_escapes_hostile_text() -> None:
    md = render(sample_report(), "markdown")
    row = next(line for line in md.splitlines() if "alert" in line)
    assert "<" not in row and "\n" not in row
    # Unescaped pipes are only the 7 cell borders of a 6-column row.
    assert len(re.findall(r"(?<!\\)\|", row)) == 7
    assert "\\[link\\]" in row and "`" not in row.replace("\\`", "")
    assert HOSTILE_PATH not in md


def test_markdown_respects_max_bytes() -> None:
    base = sample_report()
    many = tuple(
        Finding(
            rule="QG-INT-MODIFIED",
            severity=Severity.HIGH,
            title="t",
            message="m" * 200,
            tier="core",
            location=__import__("qeguard.report").report.Location(path=f"src/f{i}.py"),
        )
        for i in range(500)
    )
    report = Report(**{**_fields(base), "findings": base.findings + many})
    full = render(report, "markdown")
    assert len(full.encode()) > 50_000
    from qeguard.render.markdown import render as md_render

    cut = md_render(report, max_bytes=50_000)
    assert len(cut.encode()) <= 50_000
    assert "more findings not shown here" in cut


def test_text_groups_by_severity_and_lists_suppressed_separately() -> None:
    text = render(sample_report(), "text")
    order = [
        text.index(h)
        for h in (
            "CRITICAL (2)",
            "HIGH (3)",
            "UNKNOWN (1)",
            "MEDIUM (2)",
            "LOW (1)",
            "INFO (1)",
            "Suppressed (2)",
        )
    ]
    assert order == sorted(order)
    assert "requests==2.19.0 (requirements.txt:3)" in text
    assert "tier core: 120 files, threshold 2: 1 signed (alice), NOT met" in text
    assert "10 days old" in text
    assert "fix: qeguard restore src/core/keys.py" in text
    suppressed = text.split("Suppressed (2)", 1)[1]
    assert "jinja2==2.10" in suppressed and "not reachable" in suppressed
    assert "jinja2" not in text.split("Suppressed (2)", 1)[0].split("\n\n", 1)[1]


def test_text_colour_only_when_asked_and_never_from_data() -> None:
    from qeguard.render import text as text_format

    plain = text_format.render(sample_report())
    assert "\x1b" not in plain
    assert "\\x1b[2J" in plain and "\\x0a.py" in plain
    coloured = text_format.render(sample_report(), color=True)
    assert "\x1b[1;31m" in coloured
    assert "\x1b[2J" not in coloured


def test_text_quiet_prints_only_findings() -> None:
    from qeguard.render import text as text_format

    quiet = text_format.render(sample_report(), quiet=True)
    assert "QG-INT-MISSING" in quiet
    assert "Verdict" not in quiet and "trust from" not in quiet and "Suppressed" not in quiet
    assert text_format.render(clean_report(), quiet=True) == ""
    assert "No findings." in text_format.render(clean_report())
