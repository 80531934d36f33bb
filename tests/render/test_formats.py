"""Every renderer over the same reports: they must agree, validate and escape."""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import jsonschema
import pytest
from helpers import DATA
from helpers.report_samples import HOSTILE_PATH, clean_report, sample_report
from qeguard.render import FORMATS, RenderOptions, render
from qeguard.render.json import schema
from qeguard.report import Finding, Inputs, Location, Report, Severity
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


def html_data(html: str) -> dict[str, Any]:
    """The findings the HTML page embeds for its script."""
    m = re.search(r'<script type="application/json" id="qeguard-data">(.*?)</script>', html, re.S)
    assert m is not None
    data: dict[str, Any] = json.loads(m.group(1))
    return data


def test_all_formats_agree_on_the_findings() -> None:
    report = sample_report()
    expected = _fingerprints(report)
    assert len(expected) == len(report.findings)  # the model never holds duplicates

    data = json.loads(render(report, "json"))
    assert {f["fingerprint"] for f in data["findings"]} == expected

    sarif = json.loads(render(report, "sarif"))
    results = sarif["runs"][0]["results"]
    assert {r["partialFingerprints"]["qeguard/v2"] for r in results} == expected
    assert {r["partialFingerprints"]["qeguard/v2"] for r in results if "suppressions" in r} == (
        _fingerprints(report, active=False)
    )

    junit = render(report, "junit")
    assert set(re.findall(r"fingerprint=([0-9a-f]+)", junit)) == expected

    html = render(report, "html")
    assert {row[8] for row in html_data(html)["rows"]} == expected
    assert set(re.findall(r'data-fingerprint="([0-9a-f]+)"', html)) == expected  # one page

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
    findings_table = md.split("### Findings", 1)[1].split("###", 1)[0]
    assert len([ln for ln in findings_table.splitlines() if ln.startswith("| ")]) == n_active + 1
    for f in report.active_findings:
        assert f.rule in text or (f.advisory_ids and f.advisory_ids[0] in text)
    assert data["verdict"] == "fail" and "Verdict: FAIL" in text and "FAIL" in md


def test_every_format_says_what_was_checked() -> None:
    report = sample_report()
    outputs = {fmt: render(report, fmt) for fmt in FORMATS}
    for fmt, out in outputs.items():
        assert "constraints.txt" in out, fmt
        assert "pypa/advisory-database" in out, fmt
    assert "2 dependency files (requirements.txt, constraints.txt), 4 packages" in outputs["text"]
    assert "4 packages (5 declarations)" in outputs["markdown"]
    assert "4 packages (5 declarations)" in outputs["html"]
    sarif = json.loads(outputs["sarif"])["runs"][0]
    assert sarif["properties"]["inputs"]["files"] == ["requirements.txt", "constraints.txt"]
    assert [a["location"]["uri"] for a in sarif["artifacts"]] == [
        "requirements.txt",
        "constraints.txt",
    ]
    assert json.loads(outputs["json"])["inputs"]["packages"] == 4


def test_counts_of_one_are_singular() -> None:
    sample = sample_report()
    report = dataclasses.replace(
        sample,
        inputs=Inputs(files=("requirements.txt",), packages=1, dependencies=1),
        tiers=sample.tiers[:1],
    )
    text, md, html = (render(report, fmt) for fmt in ("text", "markdown", "html"))
    assert "1 dependency file (requirements.txt), 1 package (1 declaration)" in text
    for out in (md, html):
        assert "1 dependency file" in out and "1 dependency files" not in out
        assert "1 package (1 declaration)" in out
    assert re.search(r"1 tier \(\d+ protected files?\)", md)
    assert "tier " + sample.tiers[0].name + ": " in text
    one_vuln = dataclasses.replace(
        sample, findings=tuple(f for f in sample.findings if f.rule == "QG-DEP-VULN")[:1]
    )
    assert "Vulnerabilities: 1 in 1 package version\n" in render(one_vuln, "text")


def test_every_format_shows_fixes() -> None:
    report = sample_report()
    for fmt in FORMATS:
        out = render(report, fmt)
        if fmt != "junit":  # JUnit carries the fix on each failing finding instead
            assert "2.20.0" in out and "5.4" in out, fmt
    assert "requests 2.19.0 -> 2.20.0 in requirements.txt (suggested)" in render(report, "text")
    assert "| requests | 2.19.0 | 2.20.0 | requirements.txt | suggested |" in render(
        report, "markdown"
    )
    assert json.loads(render(report, "json"))["fixes"][1] == {
        "package": "pyyaml",
        "version": "5.3",
        "fixed": "5.4",
        "path": None,
        "applied": False,
    }


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
    assert len({r["id"] for r in rules}) == len(rules)
    for r in rules:
        assert r["shortDescription"]["text"] and r["fullDescription"]["text"]
        assert r["help"]["text"] and r["help"]["markdown"]
        assert r["properties"]["qeguard-rule"] in RULES
    by_fp = {f.fingerprint: f for f in report.findings}
    for res in run["results"]:
        f = by_fp[res["partialFingerprints"]["qeguard/v2"]]
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["properties"]["qeguard-rule"] == f.rule
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
    page = render(sample_report(hostile=False), "html")
    # Links to advisories are navigation, not fetches; nothing else names a URL.
    osv = re.compile(r'(href=|"osv":)"https://osv\.dev/vulnerability/[A-Za-z0-9._:%-]*"')
    assert osv.search(page)
    html = osv.sub("", page)
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    # The script's only link target is the data's osv.dev prefix (checked above).
    assert "a.href=d.osv+encodeURIComponent(id)" in script
    html = html.replace(script, "")
    assert not re.search(r"\b(https?|ftp|wss?|file):", html, re.I)
    assert not re.search(r"(=|url\()\s*[\"']?\s*data:", html, re.I)
    assert not re.search(r"[\"'(=]\s*//", html)  # no scheme-relative URLs either
    assert not re.search(r"\b(src|href|action|srcset)\s*=", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html
    assert html.count("<script>") == 1  # the one executed script; the data block is inert
    assert html.count('<script type="application/json"') == 1


def test_html_links_advisories_to_osv_only() -> None:
    html = render(sample_report(), "html")
    links = re.findall(r'href="([^"]*)"', html)
    assert links and all(u.startswith("https://osv.dev/vulnerability/") for u in links)
    assert 'href="https://osv.dev/vulnerability/PYSEC-2018-28"' in html
    assert 'href="https://osv.dev/vulnerability/CVE-2018-18074"' in html
    assert "constraints.txt:1, requirements.txt:3" in html  # one row, both places


def test_html_escapes_hostile_text() -> None:
    html = render(sample_report(), "html")
    assert "<script>alert" not in html
    assert "<img" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "\x1b" not in html
    assert html.count("<script>") == 1
    block = html.split('id="qeguard-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and "&" not in block  # the data block cannot end early
    assert any("<script>alert" in row[7] for row in html_data(html)["rows"])


def test_html_is_readable_without_js_and_has_filters() -> None:
    html = render(sample_report(), "html")
    assert '<div id="filters" hidden>' in html  # shown only when the script runs
    for name in ("status", "severity", "rule", "tier", "package"):
        assert f'<select name="{name}"' in html
    assert html.count("<tr data-fingerprint=") == len(sample_report().findings)
    assert len(html_data(html)["rows"]) == len(sample_report().findings)
    assert (
        "<svg" in html and "Findings by severity" in html and "Findings by tier / package" in html
    )


def test_markdown_escapes_hostile_text() -> None:
    md = render(sample_report(), "markdown")
    row = next(line for line in md.splitlines() if "alert" in line)
    assert "<" not in row and "\n" not in row
    # Unescaped pipes are only the 8 cell borders of a 7-column row.
    assert len(re.findall(r"(?<!\\)\|", row)) == 8
    assert "\\[link\\]" in row and "`" not in row.replace("\\`", "")
    assert HOSTILE_PATH not in md


def _modified(n: int, *, tiers: int) -> tuple[Finding, ...]:
    return tuple(
        Finding(
            rule="QG-INT-MODIFIED",
            severity=Severity.HIGH,
            title="t",
            message="m" * 200,
            tier=f"t{i % tiers}",
            location=Location(path=f"src/f{i}.py"),
        )
        for i in range(n)
    )


def test_markdown_respects_max_bytes() -> None:
    base = sample_report()
    # Every finding in a tier of its own: nothing to group, so rows are left out.
    report = Report(**{**_fields(base), "findings": base.findings + _modified(500, tiers=500)})
    full = render(report, "markdown")
    assert len(full.encode()) > 50_000
    cut = render(report, "markdown", RenderOptions(markdown_max_bytes=50_000))
    assert len(cut.encode()) <= 50_000
    kept = len([ln for ln in cut.splitlines() if ln.startswith("| **")])
    left = int(re.search(r"(\d+) more findings not shown", cut).group(1))  # type: ignore[union-attr]
    assert kept + left == len(report.active_findings)
    # Most severe first: every critical finding is kept.
    assert cut.count("| **critical** |") == report.counts["critical"]


def test_markdown_groups_many_findings_of_a_tier_to_keep_the_advisories() -> None:
    base = sample_report()
    report = Report(**{**_fields(base), "findings": base.findings + _modified(2000, tiers=2)})
    cut = render(report, "markdown", RenderOptions(markdown_max_bytes=50_000))
    assert len(cut.encode()) <= 50_000
    assert "more findings not shown" not in cut  # grouped, everything is accounted for
    assert (
        "| **high** | QG-INT-MODIFIED | - | 1000 findings: src/f0.py, src/f10.py, src/f100.py +997"
        in cut
    )
    assert "[PYSEC-2018-28](https://osv.dev/vulnerability/PYSEC-2018-28)" in cut
    assert "More than 10 findings of one rule, tier and severity are one row." in cut
    # Without a cap there is a row per finding.
    assert render(report, "markdown").count("| QG-INT-MODIFIED |") == 2000 + 4  # + the sample's


def test_markdown_shows_ids_linked_and_every_place() -> None:
    md = render(sample_report(), "markdown")
    row = next(line for line in md.splitlines() if "PYSEC-2018-28" in line)
    assert "[PYSEC-2018-28](https://osv.dev/vulnerability/PYSEC-2018-28)" in row
    assert "(https://osv.dev/vulnerability/CVE-2018-18074)" in row
    assert "constraints.txt:1, requirements.txt:3" in row
    assert md.count("[PYSEC-2018-28](") == 1  # one finding, not one per file


def test_text_groups_by_severity_and_lists_suppressed_separately() -> None:
    text = render(sample_report(), "text")
    order = [
        text.index(h)
        for h in (
            "Vulnerabilities: 2 in 2 package versions",
            "CRITICAL (2)",
            "HIGH (2)",
            "MEDIUM (2)",
            "LOW (2)",
            "INFO (1)",
            "Suppressed (2)",
        )
    ]
    assert order == sorted(order)
    assert "tier core: 120 files, threshold 2: 1 signed (alice), NOT met" in text
    assert "10 days old" in text
    assert "fix: qeguard restore src/core/keys.py" in text
    suppressed = text.split("Suppressed (2)", 1)[1]
    assert "jinja2==2.10" in suppressed and "not reachable" in suppressed
    assert "PYSEC-2019-217" in suppressed
    assert "jinja2" not in text.split("Suppressed (2)", 1)[0].split("\n\n", 1)[1]


def test_text_colour_only_when_asked_and_never_from_data() -> None:
    from qeguard.render import text as text_format

    plain = text_format.render(sample_report())
    assert "\x1b" not in plain
    assert "\\x1b[2J" in plain and "\\x0a.py" in plain
    coloured = text_format.render(sample_report(), RenderOptions(color=True))
    assert "\x1b[1;31m" in coloured
    assert "\x1b[2J" not in coloured


def test_text_quiet_prints_only_findings() -> None:
    from qeguard.render import text as text_format

    quiet = text_format.render(sample_report(), RenderOptions(quiet=True))
    assert "QG-INT-MISSING" in quiet and "PYSEC-2018-28" in quiet
    assert "Verdict" not in quiet and "trust from" not in quiet and "Suppressed" not in quiet
    assert text_format.render(clean_report(), RenderOptions(quiet=True)) == ""
    assert "No findings." in text_format.render(clean_report())
