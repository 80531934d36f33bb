"""`qeguard deps`, `db` and `sbom` through guard.cli.main, in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import DATA
from qeguard.cli.main import main

DEPS_DATA = DATA / "deps"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qg-cache"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "requirements.txt").write_text(
        "# app\nrequests==2.19.0  # pinned long ago\njinja2==2.10 ; python_version >= '3'\n"
    )
    return tmp_path


def test_deps_json_exit_1_and_locations(repo: Path, capsys):
    code = main(["-C", str(repo), "deps", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["command"] == "deps" and out["database"]["date"] == "2024-10-10"
    vulns = [f for f in out["findings"] if f["rule"] == "QG-DEP-VULN"]
    assert {f["location"]["line"] for f in vulns} == {2, 3}


def test_deps_text_and_json_file(repo: Path, capsys, tmp_path: Path):
    code = main(
        [
            "-C",
            str(repo),
            "deps",
            "--format",
            "json",
            "--output",
            str(tmp_path / "r.json"),
            "--format",
            "text",
        ]
    )
    assert code == 1
    assert "PYSEC" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "fail"


def test_clean_repo_exits_0(tmp_path: Path, capsys):
    (tmp_path / "requirements.txt").write_text("requests==2.32.3\n")
    policy = tmp_path / ".qeguard"
    policy.mkdir()
    (policy / "policy.toml").write_text(
        '[[tiers]]\nname = "core"\npatterns = ["src/**"]\n[deps]\nfail_on = "medium"\n'
    )
    assert main(["-C", str(tmp_path), "deps", "--format", "json"]) == 0


def test_malformed_input_exits_2_with_file_and_line(tmp_path: Path, capsys):
    (tmp_path / "requirements.txt").write_text("ok==1\n==broken\n")
    assert main(["-C", str(tmp_path), "deps"]) == 2
    assert "requirements.txt:2" in capsys.readouterr().err


def test_bad_policy_exits_2(repo: Path, capsys):
    (repo / ".qeguard").mkdir()
    (repo / ".qeguard" / "policy.toml").write_text(
        '[[tiers]]\nname = "core"\npatterns = ["a"]\n[deps]\nignore = [{id = "PYSEC-1"}]\n'
    )
    assert main(["-C", str(repo), "deps"]) == 2
    assert "reason" in capsys.readouterr().err


def test_fix_rewrites_pins_and_keeps_comments(repo: Path, capsys):
    main(["-C", str(repo), "deps", "--fix", "--format", "json"])
    text = (repo / "requirements.txt").read_text()
    assert text.startswith("# app\nrequests==2.31.0  # pinned long ago\n")
    assert "jinja2==2.11.3 ; python_version >= '3'" in text
    assert main(["-C", str(repo), "deps", "--format", "json"]) == 0


def test_fix_refuses_stale_hashes(tmp_path: Path, capsys):
    shutil.copy(DEPS_DATA / "hashed/requirements.txt", tmp_path / "requirements.txt")
    before = (tmp_path / "requirements.txt").read_text()
    main(["-C", str(tmp_path), "deps", "--fix", "--format", "json"])
    err = capsys.readouterr().err
    assert "hashes must be regenerated for requests==2.31.0" in err
    after = (tmp_path / "requirements.txt").read_text()
    assert "requests==2.19.0" in after and "jinja2==2.11.3  # keep this comment" in after
    assert after != before


def test_fix_suggestions(repo: Path, capsys):
    main(["-C", str(repo), "deps", "--fix-suggestions", "--format", "json"])
    err = capsys.readouterr().err
    assert "requirements.txt:2: requests 2.19.0 -> 2.31.0" in err


def test_db_info_import_and_bad_zip(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path / "own-cache"))  # import replaces it
    assert main(["db", "info"]) == 0
    assert "2661" in capsys.readouterr().out
    folder = tmp_path / "osv"
    folder.mkdir()
    (folder / "GHSA-aaaa.json").write_text(
        json.dumps(
            {
                "id": "GHSA-aaaa",
                "modified": "2026-01-02T00:00:00Z",
                "aliases": ["CVE-1"],
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "demo"},
                        "ranges": [
                            {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}
                        ],
                    }
                ],
            }
        )
    )
    assert main(["db", "import", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "records:  1" in out and "2026-01-02" in out
    (tmp_path / "requirements.txt").write_text("demo==1.5\n")
    assert main(["-C", str(tmp_path), "deps", "--format", "json"]) == 1
    found = json.loads(capsys.readouterr().out)["findings"]
    assert any(f["details"].get("id") == "GHSA-aaaa" for f in found)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    assert main(["db", "import", str(tmp_path / "bad.zip")]) == 2


def test_sbom_validates(repo: Path, tmp_path: Path, capsys):
    out = tmp_path / "sbom.cdx.json"
    assert main(["-C", str(repo), "sbom", "--output", str(out)]) == 0
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    assert {c["purl"] for c in bom["components"]} == {
        "pkg:pypi/requests@2.19.0",
        "pkg:pypi/jinja2@2.10",
    }


def test_pip_audit_conventions_are_in_help_and_docs(capsys):
    assert main(["deps", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    docs = (DATA.parent.parent / "docs" / "deps.md").read_text()
    for flag in (
        "-r FILE, --requirement FILE",
        "--ignore-vuln ID",
        "--strict",
        "--desc",
        "--aliases",
        "-s {osv,pypi}, --service {osv,pypi}",
        "--offline",
    ):
        assert flag in text, flag
        assert flag.split(",")[-1].strip().split(" ")[0] in docs, flag


def test_requirement_and_service_aliases(repo: Path, capsys):
    code = main(["deps", "-r", str(repo / "requirements.txt"), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["inputs"]["files"][0].endswith("requirements.txt")
    args = ["-C", str(repo), "deps", "-s", "pypi", "--format", "json"]
    assert main(args) == 1  # offline: the service is only chosen, not asked


def test_environment_scan_without_a_policy_points_at_no_missing_file(tmp_path: Path, capsys):
    """`deps --env` where there is no policy and no dependency file: the database finding
    (the bundled snapshot is old) points at no file, not at a `.qeguard/policy.toml` that
    does not exist: SARIF names what it is about (code scanning needs a location), the
    GitHub annotation is on the run, and every SARIF location is a file that exists or a
    name in parentheses."""
    import jsonschema
    from qeguard.deps.audit import run_scan
    from qeguard.render import github
    from qeguard.rules import RuleId

    root = tmp_path / "bare"
    root.mkdir()
    assert main(["-C", str(root), "deps", "--env", "--format", "sarif"]) in (0, 1)
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, json.loads((DATA / "sarif-schema-2.1.0.json").read_text("utf-8")))
    results = doc["runs"][0]["results"]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results]
    assert uris and all(u.startswith("%28") or (root / u).exists() for u in uris), uris
    db = [r for r in results if r["properties"]["qeguard-rule"] == "QG-DEP-DB"]
    assert db and {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in db
    } == {"%28vulnerability%20database%29"}
    report = run_scan(root, None, env=True).report
    finding = next(f for f in report.findings if f.rule == RuleId.DEP_DB)
    line = github.annotation(report, finding)
    assert line.startswith("::") and "file=" not in line and "title=QG-DEP-DB" in line
