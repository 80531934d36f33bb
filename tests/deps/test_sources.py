"""Dependency sources, on real files copied from public repositories (tests/data/deps)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import DATA
from hypothesis import given
from hypothesis import strategies as st
from qeguard.deps.model import DepsInputError, TargetEnvironment
from qeguard.deps.sources import detect, load_path
from qeguard.deps.sources.environment import load_environment
from qeguard.deps.sources.requirements import parse_line

DEPS_DATA = DATA / "deps"
LINUX = TargetEnvironment.for_target("3.11", "linux")


def load(rel: str, env: TargetEnvironment = LINUX):
    return load_path(DEPS_DATA / rel, root=DEPS_DATA, env=env)


def by_name(deps):
    return {d.canonical_name: d for d in deps}


def test_requirements_includes_markers_hashes_and_unscannable():
    deps = load("includes/requirements.txt")
    names = by_name(deps)
    # -r and -c are relative to the including file and keep their own file and line.
    assert names["jinja2"].source == "includes/sub/base.txt"
    assert names["jinja2"].line == 1 and names["jinja2"].version == "2.10"
    assert "urllib3" not in names  # -c restricts versions; a constraint is no dependency
    assert names["requests"].line == 5 and names["requests"].version == "2.19.0"
    assert "pywin32" not in names  # the marker is false on linux
    assert names["flask"].version is None and names["flask"].specifier == ">=0.10"
    assert names["flask"].extras == ("async",)
    unscannable = [d for d in deps if d.unscannable]
    assert {d.line for d in unscannable} == {9, 10, 11}
    assert names["project"].unscannable.startswith("editable install")


def test_requirements_target_platform_changes_markers():
    names = by_name(
        load("includes/requirements.txt", TargetEnvironment.for_target("3.11", "win32"))
    )
    assert names["pywin32"].version == "300"


def test_requirements_hashes_on_continuation_lines():
    names = by_name(load("hashed/requirements.txt"))
    assert len(names["requests"].hashes) == 2
    assert names["requests"].hashes[0].startswith("sha256:63b52e3c")
    assert names["jinja2"].hashes == () and names["jinja2"].line == 5


def test_qemlflow_requirements_are_ranges():
    deps = load("requirements/qemlflow-requirements.txt")
    assert len(deps) > 80
    numpy = by_name(deps)["numpy"]
    assert (numpy.line, numpy.specifier, numpy.version) == (5, ">=1.24.0", None)
    assert by_name(deps)["ray"].extras in (("default",), ("tune",), ("train",))


def test_malformed_requirement_names_file_and_line(tmp_path: Path):
    (tmp_path / "requirements.txt").write_text("ok==1.0\nthis is not valid==\n")
    with pytest.raises(DepsInputError) as exc:
        load_path(tmp_path / "requirements.txt", root=tmp_path, env=LINUX)
    assert exc.value.where == "requirements.txt:2"


def test_missing_include_is_an_input_error(tmp_path: Path):
    (tmp_path / "requirements.txt").write_text("-r nope.txt\n")
    with pytest.raises(DepsInputError, match=r"nope\.txt"):
        load_path(tmp_path / "requirements.txt", root=tmp_path, env=LINUX)


def test_include_cycle_reads_each_file_once(tmp_path: Path):
    (tmp_path / "requirements.txt").write_text("-r b.txt\nsix==1.0\n")
    (tmp_path / "b.txt").write_text("-r requirements.txt\nidna==2.0\n")
    deps = load_path(tmp_path / "requirements.txt", root=tmp_path, env=LINUX)
    assert sorted(d.name for d in deps) == ["idna", "six"]


def test_pyproject_pep621_and_pep735(tmp_path: Path):
    shutil.copy(DEPS_DATA / "requirements" / "qemlflow-pyproject.toml", tmp_path / "pyproject.toml")
    deps = load_path(tmp_path / "pyproject.toml", root=tmp_path, env=LINUX)
    assert all(d.kind == "pyproject" for d in deps)
    assert by_name(deps)["numpy"].line is not None
    assert any(d.group and d.group.startswith("extra:") for d in deps)
    text = (
        '[project]\nname = "x"\ndependencies = ["requests>=2.0"]\n'
        '[dependency-groups]\ntest = ["pytest==7.0.0", {include-group = "lint"}]\n'
        'lint = ["ruff"]\n'
    )
    (tmp_path / "pyproject.toml").write_text(text)
    deps = load_path(tmp_path / "pyproject.toml", root=tmp_path, env=LINUX)
    groups = {(d.name, d.group) for d in deps}
    assert ("pytest", "group:test") in groups and ("ruff", "group:test") in groups
    assert by_name(deps)["requests"].line == 3


def test_pyproject_group_cycle_is_an_error(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text(
        '[dependency-groups]\na = [{include-group = "b"}]\nb = [{include-group = "a"}]\n'
    )
    with pytest.raises(DepsInputError, match="Cyclic dependency group"):
        load_path(tmp_path / "pyproject.toml", root=tmp_path, env=LINUX)


def test_uv_lock_real_file():
    deps = load("uv/uv.lock")
    names = {(d.canonical_name, d.version) for d in deps}
    # babel is forked by python version: only the 3.11 resolution applies.
    assert ("babel", "2.18.0") in names and ("babel", "2.14.0") not in names
    assert "genmod" not in {d.canonical_name for d in deps}  # the project itself
    assert all(d.hashes for d in deps if d.version)
    old = by_name(load("uv/uv.lock", TargetEnvironment.for_target("3.7.1")))
    assert old["babel"].version == "2.14.0"


def test_poetry_lock_real_file():
    deps = load("poetry/poetry.lock")
    names = by_name(deps)
    assert names["attrs"].version == "20.3.0" and names["attrs"].line == 17
    assert names["attrs"].group == "dev"
    assert names["attrs"].hashes  # from [metadata.files] (the poetry 1.1 format)


def test_pylock_spec_example():
    deps = load("pylock/pylock.toml")
    names = by_name(deps)
    assert names["attrs"].version == "25.1.0"
    assert names["attrs"].hashes == (
        "sha256:c75a69e28a550a7e93789579c22aa26b0f5b83b75dc4e08fe092980051e1090a",
    )


def test_pipfile_lock_real_file():
    deps = load("pipenv/Pipfile.lock")
    names = by_name(deps)
    assert names["fastapi"].version == "0.63.0"
    assert names["click"].markers is not None
    assert any(d.group == "develop" for d in deps)
    assert names["fastapi"].line is not None


def test_malformed_lock_files_name_the_line(tmp_path: Path):
    (tmp_path / "uv.lock").write_text('version = 1\n[[package]]\nname = "x"\nversion = \n')
    with pytest.raises(DepsInputError) as exc:
        load_path(tmp_path / "uv.lock", root=tmp_path, env=LINUX)
    assert exc.value.where == "uv.lock:4"
    (tmp_path / "Pipfile.lock").write_text('{"default": {\n  "x": \n}')
    with pytest.raises(DepsInputError) as exc:
        load_path(tmp_path / "Pipfile.lock", root=tmp_path, env=LINUX)
    assert exc.value.where == "Pipfile.lock:3"
    (tmp_path / "pylock.toml").write_text("lock-version = '2.0'\ncreated-by = 'x'\npackages = []\n")
    with pytest.raises(DepsInputError, match="lock-version"):
        load_path(tmp_path / "pylock.toml", root=tmp_path, env=LINUX)


def test_detect_finds_every_format(tmp_path: Path):
    for rel in (
        "uv/uv.lock",
        "poetry/poetry.lock",
        "pipenv/Pipfile.lock",
        "pylock/pylock.toml",
        "uv/pyproject.toml",
    ):
        shutil.copy(DEPS_DATA / rel, tmp_path / Path(rel).name)
    shutil.copy(
        DEPS_DATA / "requirements/qemlflow-requirements-core.txt",
        tmp_path / "requirements-core.txt",
    )
    found = {p.name for p in detect(tmp_path)}
    assert found == {
        "uv.lock",
        "poetry.lock",
        "Pipfile.lock",
        "pylock.toml",
        "pyproject.toml",
        "requirements-core.txt",
    }


def test_installed_environment_includes_packaging():
    deps = load_environment()
    names = by_name(deps)
    assert "packaging" in names and names["packaging"].version
    assert len(names) == len(deps)


_names = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,15}[A-Za-z0-9]", fullmatch=True)
_versions = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}", fullmatch=True)


@given(name=_names, version=_versions, comment=st.booleans())
def test_exact_pins_round_trip(name: str, version: str, comment: bool):
    line = f"{name}=={version}" + ("  # why" if comment else "")
    from qeguard.deps.sources.requirements import logical_lines

    [(_, text)] = logical_lines(line)
    dep = parse_line(text, source="r.txt", line_no=1, env=LINUX)
    assert dep is not None and dep.version == version and dep.name == name


@given(name=_names, version=_versions)
def test_range_is_never_a_pin(name: str, version: str):
    dep = parse_line(f"{name}>={version}", source="r.txt", line_no=1, env=LINUX)
    assert dep is not None and dep.version is None
