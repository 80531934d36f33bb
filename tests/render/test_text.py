"""The terminal rendering: pip-audit's compact table, `--desc` and `--aliases`."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.report_samples import clean_report, sample_report
from qeguard.cli.main import main
from qeguard.render import RenderOptions, render
from qeguard.report import ELLIPSIS, Finding, Fix, Location, Report, Severity, shorten
from qeguard.rules import RuleId

LONG = (
    "Django 2.2 before 2.2.28 allows SQL injection in QuerySet.annotate(), aggregate() and "
    "extra() through crafted dictionaries passed as the kwargs of these methods, expanded "
    "as column aliases; applications that pass user input there are affected and should "
    "upgrade, or validate the keys before passing them on to the query methods listed."
)


def _django(n: int) -> Report:
    findings = tuple(
        Finding(
            rule=RuleId.DEP_VULN,
            severity=Severity.HIGH if i % 2 else Severity.MEDIUM,
            title=f"django 2.2.0: PYSEC-2022-{i}",
            message=LONG if i == 0 else f"advisory {i}",
            package="django",
            version="2.2.0",
            location=Location(path="requirements.txt", line=3),
            fix="upgrade django to 2.2.28 (clears every known advisory)",
            details={
                "id": f"PYSEC-2022-{i}",
                "aliases": [f"CVE-2022-{2000 + i}"],
                "fix_versions": ["2.2.28", "3.2.13"],
            },
        )
        for i in range(n)
    )
    return replace(clean_report(), command="deps", findings=findings)


def test_vulnerabilities_are_one_compact_table_grouped_by_package() -> None:
    text = render(_django(16), "text")
    lines = text.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("Package"))
    columns = ["Package", "Version", "ID", "Severity", "Fix", "versions", "Declared", "in"]
    assert lines[head].split() == columns
    rows = lines[head + 2 : head + 18]
    assert rows[0].split()[:3] == ["django", "2.2.0", "PYSEC-2022-1"]  # most severe first
    assert {re.search(r"PYSEC-2022-\d+", r).group() for r in rows} == {  # type: ignore[union-attr]
        f"PYSEC-2022-{i}" for i in range(16)
    }
    # The package is named once for its group; each row is one advisory.
    assert sum(1 for r in rows if r.startswith("django")) == 1
    assert all("2.2.28, 3.2.13" in r and "requirements.txt:3" in r for r in rows)
    # The same fix sentence is not repeated sixteen times, and no description by default.
    assert text.count("upgrade django to 2.2.28") == 0
    assert "SQL injection" not in text
    assert "CVE-2022-2000" not in text


def test_desc_adds_descriptions_cut_with_an_ellipsis() -> None:
    text = render(_django(2), "text", RenderOptions(descriptions=True))
    desc = next(ln for ln in text.splitlines() if "SQL injection" in ln)
    assert desc.startswith("    Django 2.2") and desc.endswith(ELLIPSIS)
    assert len(desc.strip()) <= 300
    assert "    advisory 1" in text  # a short one is shown whole, without an ellipsis
    assert "advisory 1" + ELLIPSIS not in text


def test_aliases_adds_an_aliases_column() -> None:
    text = render(_django(2), "text", RenderOptions(aliases=True))
    head = next(ln for ln in text.splitlines() if ln.startswith("Package"))
    assert "Aliases" in head
    assert "CVE-2022-2000" in text and "CVE-2022-2001" in text


def test_several_declarations_are_counted_in_the_table() -> None:
    text = render(sample_report(), "text")
    row = next(ln for ln in text.splitlines() if "PYSEC-2018-28" in ln)
    assert "constraints.txt:1 +1" in row and "2.20.0" in row


def test_applied_fixes_say_the_findings_are_what_is_left() -> None:
    fixed = Fix(package="django", version="2.2.0", fixed="2.2.28", path="r.txt", applied=True)
    left = Fix(package="pyyaml", version="5.3", fixed="5.4", path="r.txt", applied=False)
    text = render(replace(_django(1), fixes=(fixed, left)), "text")
    assert "Fixes (1 suggested, 1 applied; the findings above are what is left)" in text
    assert "django 2.2.0 -> 2.2.28 in r.txt (applied)" in text
    md = render(replace(_django(1), fixes=(fixed,)), "markdown")
    assert "1 fix applied; the findings and verdict are what is left." in md
    assert "| django | 2.2.0 | 2.2.28 | r.txt | applied |" in md


def test_shorten_cuts_at_a_word_and_marks_the_cut() -> None:
    assert shorten("short text", 50) == "short text"
    cut = shorten("one two three four five six seven", 20)
    assert cut.endswith(ELLIPSIS) and len(cut) <= 20 and " " + ELLIPSIS not in cut
    assert shorten("a\nb\tc", 10) == "a b c"


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "r.json"
    path.write_text(render(_django(3), "json"))
    return path


def test_report_command_takes_desc_and_aliases(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(saved)]) == 0
    plain = capsys.readouterr().out
    assert main(["report", str(saved), "--desc", "--aliases"]) == 0
    rich = capsys.readouterr().out
    assert "SQL injection" not in plain and "CVE-2022-2000" not in plain
    assert "SQL injection" in rich and "CVE-2022-2000" in rich
    assert json.loads(saved.read_text())["findings"][0]["details"]["aliases"]
