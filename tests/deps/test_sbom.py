"""`qeguard sbom`: every dependency, every hash, the project, the tool and the
vulnerabilities; validated by cyclonedx-python-lib's strict JSON validator."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from helpers import DATA
from qeguard.cli.main import main

DEPS = DATA / "deps"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qg-cache"))


def _validate(text: str) -> dict:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, error
    return json.loads(text)


def _sbom(root: Path, capsys, *args: str) -> dict:
    out = root / "sbom.cdx.json"
    assert main(["-C", str(root), "sbom", "--output", str(out), *args]) == 0
    capsys.readouterr()
    return _validate(out.read_text())


def test_ranges_are_components_and_the_project_is_named(tmp_path: Path, capsys):
    """QeMLflow's requirements are ranges only: each one is still a component."""
    shutil.copy(
        DEPS / "requirements" / "qemlflow-requirements-core.txt", tmp_path / "requirements.txt"
    )
    shutil.copy(DEPS / "requirements" / "qemlflow-pyproject.toml", tmp_path / "pyproject.toml")
    bom = _sbom(tmp_path, capsys, str(tmp_path / "requirements.txt"))
    core = [
        line
        for line in (tmp_path / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    ]
    assert len(bom["components"]) == len(core) > 10
    numpy = next(c for c in bom["components"] if c["name"] == "numpy")
    assert "version" not in numpy and numpy["purl"] == "pkg:pypi/numpy"
    props = {p["name"]: p["value"] for p in numpy["properties"]}
    assert props["qeguard:specifier"].startswith(">=")
    assert props["qeguard:declared-in"].startswith("requirements.txt:")
    meta = bom["metadata"]
    assert meta["component"]["name"] == "qemlflow" and meta["component"]["type"] == "application"
    assert meta["tools"]["components"][0]["name"] == "qeguard"
    root_ref = meta["component"]["bom-ref"]
    (edges,) = [d for d in bom["dependencies"] if d["ref"] == root_ref]
    assert len(edges["dependsOn"]) == len(core)


def test_every_hash_and_the_vulnerabilities_section(tmp_path: Path, capsys):
    shutil.copy(DEPS / "poetry" / "poetry.lock", tmp_path / "poetry.lock")
    shutil.copy(DEPS / "poetry" / "pyproject.toml", tmp_path / "pyproject.toml")
    bom = _sbom(tmp_path, capsys, str(tmp_path / "poetry.lock"))
    assert bom["metadata"]["component"]["name"] == "poc-poetry"  # [tool.poetry]
    certifi = next(c for c in bom["components"] if c["name"] == "certifi")
    assert len(certifi["hashes"]) == 2  # the wheel's and the sdist's digests
    vulns = {v["id"]: v for v in bom["vulnerabilities"]}
    hit = vulns["PYSEC-2023-135"]
    assert hit["affects"] == [{"ref": f"certifi=={certifi['version']}"}]
    assert hit["advisories"] == [{"url": "https://osv.dev/vulnerability/PYSEC-2023-135"}]
    assert hit["ratings"][0]["severity"] in {"unknown", "low", "medium", "high", "critical"}
    assert "recommendation" in hit and hit["description"]
    scored = [v for v in vulns.values() if "score" in v["ratings"][0]]
    assert all(v["ratings"][0]["method"].startswith("CVSSv") for v in scored)


def test_unscannable_sources_are_components_too(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(DEPS / "pip-cases")
    monkeypatch.setenv("QG_TEST_PIN", "six==1.16.0")
    bom = _sbom(tmp_path, capsys, str(DEPS / "pip-cases" / "requirements.txt"))
    sources = [
        p["value"]
        for c in bom["components"]
        for p in c.get("properties", [])
        if p["name"] == "qeguard:source"
    ]
    assert any(s.startswith("VCS source (bzr+lp:") for s in sources)
    assert any(s.startswith("editable install") for s in sources)


def test_sbom_needs_no_jsonschema(tmp_path: Path, capsys, monkeypatch):
    """A plain install has no jsonschema (only the test extra brings it): `qeguard sbom`
    must not import it. Blocked here; .ci/run also runs sbom from a plain install."""
    (tmp_path / "requirements.txt").write_text("requests==2.19.0\n")
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    for name in [m for m in sys.modules if m.startswith("cyclonedx.validation")]:
        monkeypatch.delitem(sys.modules, name)
    out = tmp_path / "sbom.json"
    assert main(["-C", str(tmp_path), "sbom", "--output", str(out)]) == 0
    monkeypatch.undo()
    _validate(out.read_text())
