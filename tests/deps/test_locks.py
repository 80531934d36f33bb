"""Lock files: pylock (PEP 751, read by packaging), Pipfile.lock, poetry, uv and pdm, on
real lock files and small ones written from each format's documentation; git sources are
scanned by their locked version in every format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import DATA
from qeguard.deps.audit import run_scan
from qeguard.deps.model import DepsInputError, TargetEnvironment
from qeguard.deps.sources import detect, load_path

DEPS = DATA / "deps"
LINUX = TargetEnvironment.for_target("3.11", "linux")
WINDOWS = TargetEnvironment.for_target("3.11", "win32")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qg-cache"))


def load(path: Path, env: TargetEnvironment = LINUX):
    return {d.name: d for d in load_path(path, root=path.parent, env=env)}


def test_pylock_markers_on_extras_and_dependency_groups():
    deps = load(DEPS / "pylock-markers" / "pylock.toml")
    # Selectable with the declared extra / group: scanned, marked as such.
    assert deps["click"].group == "extras/groups" and deps["pytest"].group == "extras/groups"
    assert deps["requests"].group is None and deps["requests"].version == "2.19.0"
    assert "pywin32" not in deps  # sys_platform is false on linux
    assert "pywin32" in load(DEPS / "pylock-markers" / "pylock.toml", WINDOWS)
    assert deps["jinja2"].version == "2.10" and deps["jinja2"].unscannable is None
    assert deps["unversioned"].unscannable == "vcs without a version"
    assert deps["mylib"].unscannable.startswith("local folder")


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("lock-version = '1.0'\ncreated-by = 'x'\n", "pylock.toml: packages", "packages"),
        (
            "lock-version = '1.0'\ncreated-by = 'x'\n[[packages]]\nname = 'a'\n"
            "version = 'not a version'\n[packages.directory]\npath = '.'\n",
            "pylock.toml:3",
            "Invalid version",
        ),
    ],
)
def test_pylock_that_pep_751_rejects_is_an_input_error(tmp_path, text, where, message):
    (tmp_path / "pylock.toml").write_text(text)
    with pytest.raises(DepsInputError, match=message) as exc:
        load_path(tmp_path / "pylock.toml", root=tmp_path, env=LINUX)
    assert exc.value.where == where


def test_pylock_spec_example_scans_end_to_end():
    report = run_scan(DEPS, None, paths=[DEPS / "pylock" / "pylock.toml"], target=LINUX).report
    assert (
        report.inputs.files == ("pylock/pylock.toml",) and report.inputs.dependencies == 3
    )  # attrs, cattrs, numpy


def test_empty_pipfile_lock_locks_nothing(tmp_path: Path):
    (tmp_path / "Pipfile.lock").write_text("")
    assert load_path(tmp_path / "Pipfile.lock", root=tmp_path, env=LINUX) == []
    report = run_scan(tmp_path, None, paths=[tmp_path / "Pipfile.lock"]).report
    assert report.inputs.files == ("Pipfile.lock",) and report.inputs.dependencies == 0


GIT_LOCKS = {
    "poetry.lock": """
[[package]]
name = "requests"
version = "2.19.0"
description = "Python HTTP for Humans."
optional = false
python-versions = "*"
files = []

[package.source]
type = "git"
url = "https://github.com/psf/requests.git"
reference = "v2.19.0"
resolved_reference = "0123456789abcdef0123456789abcdef01234567"
""",
    "uv.lock": """
version = 1
requires-python = ">=3.11"

[[package]]
name = "requests"
version = "2.19.0"
source = { git = "https://github.com/psf/requests.git?rev=v2.19.0#0123456789abcdef" }
""",
    "Pipfile.lock": json.dumps(
        {
            "_meta": {},
            "default": {
                "requests": {
                    "git": "https://github.com/psf/requests.git",
                    "ref": "0123456789abcdef0123456789abcdef01234567",
                    "version": "==2.19.0",
                }
            },
        }
    ),
    "pylock.toml": """
lock-version = "1.0"
created-by = "qeguard-tests"
[[packages]]
name = "requests"
version = "2.19.0"
[packages.vcs]
type = "git"
url = "https://github.com/psf/requests.git"
commit-id = "0123456789abcdef0123456789abcdef01234567"
""",
    "pdm.lock": """
[metadata]
lock_version = "4.5.0"
[[package]]
name = "requests"
version = "2.19.0"
git = "https://github.com/psf/requests.git"
revision = "0123456789abcdef0123456789abcdef01234567"
groups = ["default"]
""",
}


@pytest.mark.parametrize("name", sorted(GIT_LOCKS))
def test_git_sources_are_scanned_by_their_locked_version_in_every_format(tmp_path, name):
    (tmp_path / name).write_text(GIT_LOCKS[name])
    (dep,) = load_path(tmp_path / name, root=tmp_path, env=LINUX)
    assert (dep.name, dep.version, dep.unscannable) == ("requests", "2.19.0", None)
    report = run_scan(tmp_path, None, paths=[tmp_path / name], target=LINUX).report
    assert any(f.details.get("id") == "PYSEC-2018-28" for f in report.findings)


def test_git_sources_without_a_version_are_unscannable(tmp_path: Path):
    (tmp_path / "Pipfile.lock").write_text(
        json.dumps({"default": {"demo": {"git": "https://example.com/demo.git", "ref": "abc"}}})
    )
    (dep,) = load_path(tmp_path / "Pipfile.lock", root=tmp_path, env=LINUX)
    assert dep.unscannable.startswith("git")


def test_pdm_lock_real_file():
    """pdm's own test fixture (tests/fixtures/projects/demo/pdm.lock, lock_version 4.5.0)."""
    deps = load(DEPS / "pdm" / "pdm.lock")
    assert "chardet" not in deps and "colorama" not in deps  # os_name/sys_platform markers
    assert {"chardet", "colorama"} <= set(load(DEPS / "pdm" / "pdm.lock", WINDOWS))
    assert deps["requests"].version == "2.27.1" and deps["requests"].group == "security"
    assert deps["idna"].group is None  # in the default group
    assert len(deps["requests"].hashes) == 2 and deps["requests"].line == 96
    assert deps["requests"].markers == 'python_version >= "3.6"'


def test_pdm_lock_scan_finds_known_vulnerabilities():
    report = run_scan(DEPS, None, paths=[DEPS / "pdm" / "pdm.lock"], target=LINUX).report
    found = {(f.package, f.details.get("id")) for f in report.findings if f.rule == "QG-DEP-VULN"}
    assert ("requests", "PYSEC-2023-74") in found
    assert all(f.location.path == "pdm/pdm.lock" for f in report.findings if f.location)


def test_pdm_lock_written_from_the_documented_format():
    deps = load_path(DEPS / "pdm-written" / "pdm.lock", root=DEPS, env=LINUX)
    by = {d.name: d for d in deps}
    assert by["django"].version == "2.2.9" and by["django"].unscannable is None  # git
    assert by["jinja2"].version == "2.10"  # a direct URL with its locked version
    assert by["mylib"].unscannable == "editable folder './packages/mylib'"
    assert [d.name for d in deps].count("requests") == 1  # the extra's entry is the same
    assert by["requests"].hashes[0].startswith("sha256:421c")  # from [metadata.files]
    assert "pywin32" not in by


def test_detect_finds_pdm_lock(tmp_path: Path):
    shutil.copy(DEPS / "pdm" / "pdm.lock", tmp_path / "pdm.lock")
    assert [p.name for p in detect(tmp_path)] == ["pdm.lock"]
