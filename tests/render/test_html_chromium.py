"""The HTML page in a real browser: it loads, its script passes the page's CSP and runs,
and it pages through 50,000 findings. Skipped where Debian's chromium is not installed
(`apt-get install -y chromium`); the time it takes is measured in benchmarks/, not here."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.report_samples import many_findings_report, sample_report
from qeguard.render import render
from qeguard.render.html import PAGE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def chromium_flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]


def dump_dom(page: Path, tmp_path: Path) -> str:
    """The DOM after the page's script ran (what --dump-dom prints once loading ends)."""
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *chromium_flags(tmp_path / "profile"), "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout


def test_sample_page_renders_and_its_script_runs(tmp_path: Path) -> None:
    report = sample_report()
    page = tmp_path / "report.html"
    page.write_text(render(report, "html"), encoding="utf-8")
    dom = dump_dom(page, tmp_path)
    # The script ran under the page's CSP: it marked the page ready, showed the filters
    # and counted the rows (active ones by default, of all the page holds).
    assert f'data-ready="{len(report.findings)}"' in dom
    assert '<div id="filters">' in dom
    assert f"{len(report.active_findings)} of {len(report.findings)} shown" in dom
    assert 'href="https://osv.dev/vulnerability/PYSEC-2018-28"' in dom
    shot = tmp_path / "shot.png"
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            *chromium_flags(tmp_path / "profile2"),
            f"--screenshot={shot}",
            "--window-size=1280,1600",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=180,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fifty_thousand_findings_page_through(tmp_path: Path) -> None:
    report = many_findings_report(50_000)
    n = len(report.active_findings)
    assert n >= 50_000
    page = tmp_path / "big.html"
    page.write_text(render(report, "html"), encoding="utf-8")
    dom = dump_dom(page, tmp_path)
    assert f'data-ready="{len(report.findings)}"' in dom
    assert f"1-{PAGE} of {n} shown (page 1 of {-(-n // PAGE)})" in dom
    # One page of rows in the document, not fifty thousand.
    body = dom.split('<table id="findings">', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"<tr data-fingerprint=", body)) == PAGE
