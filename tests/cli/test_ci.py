"""`qeguard ci` end to end: one run, integrity and dependency findings, every format agrees."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from helpers import DATA, KeyPair, Run, git_run, write_files
from junitparser import JUnitXml
from qeguard.render import FORMATS
from qeguard.render.json import schema

SARIF_SCHEMA = json.loads((DATA / "sarif-schema-2.1.0.json").read_text("utf-8"))
# requests 2.19.1 is affected by PYSEC-2018-28 / CVE-2018-18074 in the bundled snapshot.
VULNERABLE = "requests==2.19.1\n"


@pytest.fixture
def branch_with_findings(
    repo: Path, keypair: Callable[..., KeyPair], run_cli: Callable[..., Run]
) -> Path:
    """main: protected (middle tier threshold 1) and clean; branch: a tampered file and a
    vulnerable pin, committed without re-signing."""
    alice = keypair("alice")
    write_files(
        repo,
        {
            "src/pkg/__init__.py": "",
            "src/pkg/util.py": "A = 1\n",
            "requirements.txt": "packaging==24.1\n",
            "docs/guide.md": "# g\n",
        },
    )
    for args in (
        ("init", "--preset", "qemlflow"),
        ("trust", "add", "alice", alice.public, "--tiers", "*"),
    ):
        assert run_cli(*args, cwd=repo).code == 0
    # One trusted signer is enough for this test: lower core's threshold to 1.
    policy = repo / ".qeguard" / "policy.toml"
    policy.write_text(policy.read_text() + '\n[[tiers]]\nname = "core"\nthreshold = 1\n')
    assert run_cli("sign", "--key", alice.private, cwd=repo).code == 0
    git_run(repo, "add", "-A")
    git_run(repo, "commit", "-qm", "protected")
    assert run_cli("ci", cwd=repo).code == 0, run_cli("ci", cwd=repo).out
    git_run(repo, "checkout", "-qb", "change")
    write_files(repo, {"src/pkg/util.py": "A = 2\n", "requirements.txt": VULNERABLE})
    git_run(repo, "commit", "-qam", "change")
    return repo


def test_one_run_all_formats_agree(
    branch_with_findings: Path, run_cli: Callable[..., Run], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "ci",
        "--trust-ref",
        "main",
        "--format",
        "json",
        "--output",
        out / "r.json",
        "--format",
        "sarif",
        "--output",
        out / "r.sarif",
        "--format",
        "markdown",
        "--output",
        out / "r.md",
        "--format",
        "junit",
        "--output",
        out / "r.xml",
        "--format",
        "html",
        "--output",
        out / "r.html",
        "--format",
        "text",
        cwd=branch_with_findings,
    )
    assert result.code == 1, result.out + result.err
    doc = json.loads((out / "r.json").read_text())
    jsonschema.validate(doc, schema())
    rules = {f["rule"] for f in doc["findings"] if f["suppressed"] is None}
    # Both fronts in one report: the unsigned change and the vulnerable pin.
    assert {"QG-INT-MODIFIED", "QG-DEP-VULN"} <= rules
    assert doc["trust_source"].startswith("trust root ")
    assert doc["database"]["date"] == "2024-10-10"
    vuln = next(f for f in doc["findings"] if f["rule"] == "QG-DEP-VULN")
    assert vuln["package"] == "requests" and vuln["location"] == {
        "path": "requirements.txt",
        "line": 1,
    }

    expected = {f["fingerprint"] for f in doc["findings"]}
    assert len(expected) == len(doc["findings"])
    sarif = json.loads((out / "r.sarif").read_text())
    jsonschema.validate(sarif, SARIF_SCHEMA)
    assert {r["partialFingerprints"]["qeguard/v2"] for r in sarif["runs"][0]["results"]} == (
        expected
    )
    # The advisory is its own SARIF rule, linked to osv.dev.
    advisory = next(r for r in sarif["runs"][0]["tool"]["driver"]["rules"] if "helpUri" in r)
    assert advisory["helpUri"] == f"https://osv.dev/vulnerability/{advisory['id']}"
    junit = (out / "r.xml").read_text()
    JUnitXml.fromstring(junit)
    assert set(re.findall(r"fingerprint=([0-9a-f]+)", junit)) == expected
    html = (out / "r.html").read_text()
    assert set(re.findall(r'data-fingerprint="([0-9a-f]+)"', html)) == expected
    md = (out / "r.md").read_text()
    assert f"](https://osv.dev/vulnerability/{advisory['id']})" in md
    summary = ", ".join(f"{n} {sev}" for sev, n in doc["counts"].items() if n)
    assert summary in result.out
    assert summary in (out / "r.md").read_text()
    assert summary in html


def test_github_actions_annotations_and_summary(
    branch_with_findings: Path,
    run_cli: Callable[..., Run],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run_cli("ci", "--trust-ref", "main", cwd=branch_with_findings)
    assert result.code == 1
    assert "::" not in result.out  # workflow commands go to the log (stderr), not the report
    errors = [ln for ln in result.err.splitlines() if ln.startswith("::error ")]
    assert any("file=src/pkg/util.py" in ln for ln in errors)
    assert any("file=requirements.txt,line=1" in ln for ln in errors)
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, never replaced
    assert "QG-INT-MODIFIED" in text and "QG-DEP-VULN" in text


def test_clean_branch_passes_and_no_deps_skips_the_scan(
    branch_with_findings: Path, run_cli: Callable[..., Run]
) -> None:
    git_run(branch_with_findings, "checkout", "-q", "main")
    result = run_cli(
        "ci", "--trust-ref", "main", "--no-deps", "--format", "json", cwd=branch_with_findings
    )
    assert result.code == 0, result.out
    doc = json.loads(result.out)
    assert doc["database"] is None
    assert not [f for f in doc["findings"] if f["rule"].startswith("QG-DEP")]


def _parse(fmt: str, out: str) -> object:
    """Parse one format's stdout with the consumer that would read it."""
    if fmt in ("json", "sarif"):
        doc = json.loads(out)
        jsonschema.validate(doc, schema() if fmt == "json" else SARIF_SCHEMA)
        return doc
    if fmt == "junit":
        return JUnitXml.fromstring(out)
    if fmt == "html":
        assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
        block = out.split('id="qeguard-data">', 1)[1].split("</script>", 1)[0]
        return json.loads(block)
    return out


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f not in ("text", "markdown")])
@pytest.mark.parametrize(
    "argv",
    [
        ("ci", "--trust-ref", "main"),
        ("verify", "--trust-ref", "main"),
        ("deps",),
    ],
    ids=lambda a: a[0],
)
def test_machine_formats_on_stdout_parse_under_github_actions(
    branch_with_findings: Path,
    run_cli: Callable[..., Run],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: tuple[str, ...],
    fmt: str,
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    result = run_cli(*argv, "--format", fmt, cwd=branch_with_findings)
    assert result.code == 1, result.err
    _parse(fmt, result.out)
    assert "::error" not in result.out and "::warning" not in result.out
    if argv[0] == "ci":
        assert "::error " in result.err


def test_sarif_category_names_the_analysis_only_when_asked(
    branch_with_findings: Path, run_cli: Callable[..., Run]
) -> None:
    plain = json.loads(
        run_cli("ci", "--trust-ref", "main", "--format", "sarif", cwd=branch_with_findings).out
    )
    # Without the flag the upload step's `category:` decides (it is ignored when set here).
    assert "automationDetails" not in plain["runs"][0]
    named = json.loads(
        run_cli(
            "ci",
            "--trust-ref",
            "main",
            "--format",
            "sarif",
            "--sarif-category",
            "qeguard/py3.12",
            cwd=branch_with_findings,
        ).out
    )
    assert named["runs"][0]["automationDetails"] == {"id": "qeguard/py3.12/"}
    jsonschema.validate(named, SARIF_SCHEMA)
    bad = run_cli("ci", "--format", "sarif", "--sarif-category", "/", cwd=branch_with_findings)
    assert bad.code == 2
