"""`qeguard report`, the --format/--output pairing and `emit`."""

from __future__ import annotations

import argparse
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.report_samples import sample_report
from qeguard.cli.console import Console
from qeguard.cli.main import main
from qeguard.cli.output import add_output_arguments, emit, output_pairs
from qeguard.errors import UsageError
from qeguard.render import render


def _parse(argv: list[str]) -> list[tuple[str, str]]:
    p = argparse.ArgumentParser()
    add_output_arguments(p)
    return output_pairs(p.parse_args(argv))


@pytest.mark.parametrize(
    ("argv", "pairs"),
    [
        ([], [("text", "-")]),
        (["--format", "json"], [("json", "-")]),
        (["--format", "sarif", "--output", "a.sarif"], [("sarif", "a.sarif")]),
        (
            ["--format", "sarif", "--output", "a.sarif", "--format", "text"],
            [("sarif", "a.sarif"), ("text", "-")],
        ),
        (
            ["-f", "html", "-o", "r.html", "-f", "junit", "-o", "j.xml"],
            [("html", "r.html"), ("junit", "j.xml")],
        ),
        (["--output", "x.sarif", "--output", "y.md"], [("sarif", "x.sarif"), ("markdown", "y.md")]),
        (
            ["--format", "json", "--output", "a", "--output", "b.html"],
            [("json", "a"), ("html", "b.html")],
        ),
    ],
)
def test_output_pairing(argv: list[str], pairs: list[tuple[str, str]]) -> None:
    assert _parse(argv) == pairs


def test_two_formats_on_stdout_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        _parse(["--format", "json", "--format", "text"])


def test_pairs_do_not_leak_between_parses() -> None:
    p = argparse.ArgumentParser()
    add_output_arguments(p)
    p.parse_args(["--format", "json"])
    assert output_pairs(p.parse_args([])) == [("text", "-")]


def test_emit_writes_files_and_stdout(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    report = sample_report()
    emit(report, [("sarif", str(tmp_path / "sub" / "r.sarif")), ("json", "-")], Console(out, err))
    assert json.loads(out.getvalue()) == json.loads(render(report, "json"))
    assert (tmp_path / "sub" / "r.sarif").read_text() == render(report, "sarif")
    assert "wrote sarif report" in err.getvalue()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "saved.json"
    path.write_text(render(sample_report(), "json"))
    return path


def test_report_rerenders_saved_json(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sarif = tmp_path / "out.sarif"
    junit = tmp_path / "out.xml"
    code = main(
        [
            "report",
            str(saved),
            "--format",
            "sarif",
            "--output",
            str(sarif),
            "--format",
            "junit",
            "--output",
            str(junit),
            "--format",
            "text",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "QG-INT-MISSING" in out and "Verdict: FAIL" in out and "\x1b" not in out
    assert json.loads(sarif.read_text()) == json.loads(render(sample_report(), "sarif"))
    ET.fromstring(junit.read_text())


def test_report_json_to_json_is_identical(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(saved), "--format", "json"]) == 0
    assert capsys.readouterr().out == saved.read_text()


def test_report_exit_code_flag(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(saved), "--exit-code", "-q"]) == 1


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "no such report file"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"schema": "other/v1"}', "not a qeguard report"),
        ('{"schema": "qeguard.report/v1"}', "missing field"),
    ],
)
def test_report_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, needle: str
) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and str(path) in err and "Traceback" not in err


def test_report_unknown_format_exits_2(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(saved), "--format", "pdf"]) == 2


def test_report_colour_follows_console(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = io.StringIO()
    assert main(["report", str(saved)], Console(out, io.StringIO())) == 0
    assert "\x1b[" in out.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    out = io.StringIO()
    main(["report", str(saved)], Console(out, io.StringIO()))
    assert "\x1b[" not in out.getvalue()
