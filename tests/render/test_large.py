"""A project with many findings (the issue's "done when"): 30 old pins read through two
files by the real scanner, plus tens of thousands of changed protected files. Every
format is valid for its consumer, holds no duplicate fingerprints and stays under its cap.
(`benchmarks/bench_report.py` runs the same on a real 50,000-file tree and times the
HTML page in Chromium.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helpers import DATA
from helpers.report_samples import OLD_PINS, many_findings_report
from junitparser import JUnitXml
from qeguard.deps.audit import run_scan
from qeguard.render import FORMATS, MARKDOWN_LIMIT, RenderOptions, github, render
from qeguard.render.html import PAGE
from qeguard.render.json import schema
from qeguard.render.sarif import MAX_RESULTS
from qeguard.report import Report
from qeguard.rules import RuleId

SARIF_SCHEMA = json.loads((DATA / "sarif-schema-2.1.0.json").read_text("utf-8"))
CHANGED = MAX_RESULTS + 1_000  # over the SARIF cap


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Report:
    root = tmp_path_factory.mktemp("project")
    (root / "requirements").mkdir()
    pins = "\n".join(OLD_PINS) + "\n"
    (root / "requirements" / "base.txt").write_text(pins)
    (root / "requirements.txt").write_text("-r requirements/base.txt\n" + pins)
    deps = run_scan(root, None).report
    return many_findings_report(CHANGED, pins=False).merged(deps)


@pytest.fixture(scope="module")
def outputs(big: Report) -> dict[str, str]:
    return {fmt: render(big, fmt) for fmt in FORMATS}


def test_the_scan_reports_each_pin_advisory_once_with_both_places(big: Report) -> None:
    vulns = [f for f in big.findings if f.rule == RuleId.DEP_VULN]
    assert len({f.package for f in vulns}) == 30
    assert all(
        {p.path for p in f.locations} == {"requirements.txt", "requirements/base.txt"}
        for f in vulns
    )
    assert len({f.fingerprint for f in big.findings}) == len(big.findings)


def test_json_is_valid_and_unique(big: Report, outputs: dict[str, str]) -> None:
    doc = json.loads(outputs["json"])
    fps = [f["fingerprint"] for f in doc["findings"]]
    assert len(fps) == len(set(fps)) == len(big.findings)
    # Validating 26,000 findings of one shape adds time, not coverage: validate every
    # dependency finding and one integrity finding of each (tier, severity).
    seen: set[tuple[Any, ...]] = set()
    sample = []
    for f in doc["findings"]:
        key = (f["rule"], f["tier"], f["severity"])
        if f["rule"].startswith("QG-DEP") or key not in seen:
            seen.add(key)
            sample.append(f)
    jsonschema.Draft202012Validator(schema()).validate({**doc, "findings": sample})


def test_sarif_is_valid_capped_and_unique(outputs: dict[str, str]) -> None:
    doc = json.loads(outputs["sarif"])
    jsonschema.validate(doc, SARIF_SCHEMA)
    run = doc["runs"][0]
    fps = [r["partialFingerprints"]["qeguard/v2"] for r in run["results"]]
    assert len(fps) == len(set(fps)) == MAX_RESULTS
    assert run["properties"]["leftOut"] > 0
    assert "left out" in run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]
    # Every advisory of the scan made it in (they are the most severe of the run or tie).
    ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert sum(1 for i in ids if re.match(r"^(PYSEC|GHSA)-", i)) >= 30


def test_junit_parses_and_lists_each_finding_once(big: Report, outputs: dict[str, str]) -> None:
    xml = JUnitXml.fromstring(outputs["junit"])
    assert xml.failures > 0
    fps = re.findall(r"fingerprint=([0-9a-f]+)", outputs["junit"])
    assert len(fps) == len(set(fps)) == len(big.findings)


def test_markdown_and_step_summary_stay_under_1_mib(
    big: Report, outputs: dict[str, str], tmp_path: Path
) -> None:
    md = outputs["markdown"]
    assert len(md.encode()) <= MARKDOWN_LIMIT
    # The changed files of each tier are one row, so every advisory has its row, linked.
    assert "findings: pkg" in md
    vulns = [f for f in big.findings if f.rule == RuleId.DEP_VULN]
    for f in vulns:
        i = f.advisory_ids[0]
        assert f"[{i}](https://osv.dev/vulnerability/{i})" in md
    comment = render(big, "markdown", RenderOptions(markdown_max_bytes=65_000))
    assert len(comment) <= 65_536 and "more findings not shown" in comment
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    github.append_step_summary(big, summary)
    assert len(summary.read_bytes()) <= github.STEP_SUMMARY_LIMIT


def test_html_pages_instead_of_listing_everything(big: Report, outputs: dict[str, str]) -> None:
    page = outputs["html"]
    block = page.split('id="qeguard-data">', 1)[1].split("</script>", 1)[0]
    fps = [row[8] for row in json.loads(block)["rows"]]
    assert len(fps) == len(set(fps)) == len(big.findings)
    assert page.count("<tr data-fingerprint=") == PAGE
    assert f"The table shows {PAGE} findings at a time" in page
