"""GitHub Actions output: workflow-command escaping, annotation limits, step summary size."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from helpers.report_samples import clean_report, sample_report
from hypothesis import given
from hypothesis import strategies as st
from qeguard.render import github
from qeguard.report import Finding, Location, Severity


def _unescape(text: str) -> str:
    for enc, raw in (("%2C", ","), ("%3A", ":"), ("%0A", "\n"), ("%0D", "\r"), ("%25", "%")):
        text = text.replace(enc, raw)
    return text


@given(st.text())
def test_escape_property_round_trips_and_leaves_no_separators(text: str) -> None:
    out = github.escape_property(text)
    assert not set(out) & {"\r", "\n", ":", ","}
    assert _unescape(out) == text


@given(st.text())
def test_escape_data_round_trips_and_stays_on_one_line(text: str) -> None:
    out = github.escape_data(text)
    assert "\n" not in out and "\r" not in out
    assert _unescape(out) == text


def test_annotation_format_and_escaping() -> None:
    report = sample_report()
    f = next(f for f in report.findings if f.package == "requests")
    line = github.annotation(report, f)
    assert line.startswith("::error file=constraints.txt,line=1,title=QG-DEP-VULN%3A ")
    assert line.count("::") == 2 and "\n" not in line
    hostile = next(f for f in report.findings if f.location and "script" in f.location.path)
    line = github.annotation(report, hostile)
    assert line.startswith('::warning file=src/<script>alert("x")</script>|*a*%2Cb%3Ac%25d%0A.py,')
    props, message = line[len("::warning ") :].split("::", 1)
    assert len(props.split(",")) == 3  # file, line, title: no stray separators
    assert "\n" not in message


def test_annotations_skip_suppressed_and_point_somewhere() -> None:
    report = sample_report()
    lines = github.annotations(report)
    assert len(lines) == len(report.active_findings)
    assert all(re.match(r"::(error|warning|notice) file=[^,]+", ln) for ln in lines)
    assert any("file=.qeguard/policy.toml" in ln for ln in lines)
    assert not any("jinja2" in ln for ln in lines)
    assert github.annotations(clean_report()) == []


def test_annotations_are_capped_per_level_with_a_note() -> None:
    many = tuple(
        Finding(
            rule="QG-INT-MODIFIED",
            severity=sev,
            title="t",
            message="m",
            tier="core",
            location=Location(path=f"{sev.value}/f{i}.py"),
        )
        for i in range(25)
        for sev in (Severity.HIGH, Severity.MEDIUM)
    )
    lines = github.annotations(replace(clean_report(), findings=many))
    errors = [ln for ln in lines if ln.startswith("::error ")]
    warnings = [ln for ln in lines if ln.startswith("::warning ")]
    assert len(errors) == 10 and len(warnings) == 10
    assert lines[-1].startswith("::notice title=qeguard::30 more findings not annotated")


def test_annotations_name_the_advisory_and_rate_a_warn_tier_change_a_warning() -> None:
    lines = github.annotations(sample_report())
    vuln = next(ln for ln in lines if "requests" in ln)
    assert vuln.startswith("::error file=constraints.txt,line=1,")
    assert "PYSEC-2018-28: credentials leak" in vuln
    outer = next(ln for ln in lines if "docs/guide.md" in ln)
    assert outer.startswith("::warning ")  # low, below fail_on: not an error


def test_long_messages_are_truncated() -> None:
    f = Finding(
        rule="QG-DEP-VULN",
        severity=Severity.HIGH,
        title="t",
        message="x" * 100_000,
        package="p",
        version="1",
    )
    line = github.annotation(replace(clean_report(), findings=(f,)), f)
    assert len(line) < github.MAX_MESSAGE + 300


def test_step_summary_appends_and_stays_under_1_mib(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("earlier step\n")
    big = tuple(
        Finding(
            rule="QG-INT-MODIFIED",
            severity=Severity.HIGH,
            title="t",
            message="m" * 2000,
            tier=f"tier{i}",  # one finding per tier: nothing to group
            location=Location(path=f"src/{i}.py"),
        )
        for i in range(8000)
    )
    github.append_step_summary(replace(sample_report(), findings=big), path)
    text = path.read_text()
    assert text.startswith("earlier step\n")
    assert len(text.encode()) <= github.STEP_SUMMARY_LIMIT
    assert re.search(r"\d+ more findings not shown", text)
    github.append_step_summary(sample_report(), tmp_path / "new.md")
    assert (tmp_path / "new.md").read_text().startswith("## qeguard ci: FAIL")


def test_step_summary_full_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_bytes(b"x" * github.STEP_SUMMARY_LIMIT)
    github.append_step_summary(sample_report(), path)
    assert path.stat().st_size == github.STEP_SUMMARY_LIMIT
