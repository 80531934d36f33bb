"""requirements files read as pip reads them, case by case, with pip itself as the oracle.

tests/data/deps/pip-cases was written from pip's requirements-file documentation: one
case a line (continuations, comments, `${VAR}`, paths, file: URLs, every VCS form,
constraints, options). pip's own parser (`pip._internal.req.req_file`, internal: used only
here, as an independent reading) must see the same lines as the same requirements.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import DATA
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from qeguard.deps.model import DepsInputError, TargetEnvironment
from qeguard.deps.sources import load_path
from qeguard.deps.sources.requirements import logical_lines, parse_requirement

CASES = DATA / "deps" / "pip-cases"
LINUX = TargetEnvironment.for_target("3.11", "linux")


def _load(path: Path, root: Path | None = None):
    return load_path(path, root=root or path.parent, env=LINUX)


@pytest.fixture
def cases(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("QG_TEST_PIN", "six==1.16.0")
    monkeypatch.delenv("QG_TEST_UNSET", raising=False)
    monkeypatch.chdir(CASES)  # pip resolves local paths against the current folder
    return {(d.source, d.line): d for d in _load(CASES / "requirements.txt")}


def _pip_lines(path: Path) -> list[tuple[str, int, str, bool, bool]]:
    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import parse_requirements

    out = []
    for r in parse_requirements(str(path), session=PipSession()):
        m = re.search(r"-[rc] (\S+) \(line (\d+)\)$", r.comes_from)
        assert m, r.comes_from
        source = Path(m.group(1)).resolve().relative_to(CASES).as_posix()
        out.append((source, int(m.group(2)), r.requirement, r.is_editable, r.constraint))
    return out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pip imports pkg_resources
def test_pip_reads_the_same_lines_as_the_same_requirements(cases):
    pip = _pip_lines(CASES / "requirements.txt")
    required = [(s, n, req, ed) for s, n, req, ed, constraint in pip if not constraint]
    constraints = [(s, n, req) for s, n, req, _, constraint in pip if constraint]
    ours = set(cases)
    for source, line, req, editable in required:
        if (source, line) not in ours:
            # A requirement pinned by a constraint is found at the constraint's line.
            name = Requirement(req).name
            assert any(d.name == name for d in cases.values()), (source, line, req)
            continue
        dep = cases[(source, line)]
        if editable:
            assert dep.unscannable.startswith("editable install")
            continue
        try:
            parsed = Requirement(req.split("; ")[0])
        except Exception:
            assert dep.unscannable, (req, dep)  # a URL or path: kept, never dropped
            continue
        if parsed.url:
            assert dep.name == parsed.name and "VCS source" in dep.unscannable
        elif "/" in req or req.endswith(".whl"):
            assert dep.unscannable, (req, dep)
        else:
            # pip restricts the requirement by the constraints of its name.
            restricting = [
                str(Requirement(c).specifier)
                for _, _, c in constraints
                if Requirement(c).name == parsed.name
            ]
            spec = SpecifierSet(",".join(x for x in [str(parsed.specifier), *restricting] if x))
            assert (dep.name, dep.specifier) == (parsed.name, str(spec)), req
    assert {n for s, n, _ in constraints} == {1, 3, 4}
    assert not any(s == "constraints.txt" and d.name == "unrelated" for (s, _), d in cases.items())


def test_continuations_and_comments_in_pips_order(cases):
    assert cases[("requirements.txt", 5)].specifier == "==4.5.6"  # joined without a space
    # The comment ends in `\`: pip joins first, then strips the comment and the next line.
    assert cases[("requirements.txt", 7)].name == "baz"
    assert not any(d.name == "swallowed" for d in cases.values())
    # A whole-line comment never continues, so the next line is a requirement.
    assert cases[("requirements.txt", 10)].name == "after-comment"


def test_set_variables_are_expanded_and_unset_ones_are_left(cases, tmp_path: Path):
    assert cases[("requirements.txt", 11)].version == "1.16.0"
    (tmp_path / "requirements.txt").write_text("demo==${QG_TEST_UNSET}\n")
    with pytest.raises(DepsInputError) as exc:  # pip fails on the unexpanded text too
        _load(tmp_path / "requirements.txt")
    assert exc.value.where == "requirements.txt:1"


def test_paths_and_file_urls_are_local_sources(cases):
    assert cases[("requirements.txt", 12)].unscannable == "local folder 'sub/pkgdir'"
    assert cases[("requirements.txt", 13)].unscannable == "local folder './sub/pkgdir'"
    assert cases[("requirements.txt", 14)].unscannable.startswith("local file URL")
    wheel = cases[("requirements.txt", 20)]
    assert wheel.name == "requests" and wheel.unscannable.startswith("local archive")


@pytest.mark.parametrize(
    ("line", "name"),
    [(15, "bzrproject"), (16, "gitproject"), (17, "hgproject"), (18, "svnproject"), (19, "named")],
)
def test_every_vcs_form_pip_accepts(cases, line, name):
    dep = cases[("requirements.txt", line)]
    assert dep.name == name and dep.unscannable.startswith("VCS source") and dep.version is None


def test_constraints_restrict_versions_and_are_not_dependencies(cases):
    flask = next(d for d in cases.values() if d.name == "flask")
    # The constraint pins the range: the version and hash come from constraints.txt:1.
    assert (flask.source, flask.line, flask.version) == ("constraints.txt", 1, "1.0.2")
    assert flask.specifier == "==1.0.2,>=1.0" and flask.hashes[0].startswith("sha256:2271")
    jinja2 = next(d for d in cases.values() if d.name == "jinja2")
    assert (jinja2.line, jinja2.specifier, jinja2.version) == (24, "<3", None)
    assert not any(d.name == "unrelated" for d in cases.values())


def test_options_on_requirement_lines_and_nested_files(cases):
    idna = cases[("sub/more.txt", 1)]
    assert idna.version == "2.7" and idna.hashes == (
        "sha256:156a6814fb5ac1fc6850fb002e0852d56c0c8d2531923a51032d1b70760e186e",
    )


@pytest.mark.parametrize(
    ("constraint", "problem"),
    [
        ("-e ./pkg\n", "editable"),
        ("https://example.com/x-1.0.tar.gz\n", "unnamed"),
        ("demo[extra]==1.0\n", "extras"),
    ],
)
def test_constraints_pip_refuses_are_errors(tmp_path: Path, constraint, problem):
    (tmp_path / "requirements.txt").write_text("-c c.txt\ndemo\n")
    (tmp_path / "c.txt").write_text(constraint)
    with pytest.raises(DepsInputError, match=problem) as exc:
        _load(tmp_path / "requirements.txt")
    assert exc.value.where == "c.txt:1"


def test_unknown_and_ambiguous_options_are_errors(tmp_path: Path):
    for text in ("--no-such-option\n", "--req other.txt\n", "demo==1 --install-option=x\n"):
        (tmp_path / "requirements.txt").write_text(text)
        with pytest.raises(DepsInputError, match="invalid option") as exc:
            _load(tmp_path / "requirements.txt")
        assert exc.value.where == "requirements.txt:1"


def test_pips_logical_lines_on_the_real_qemlflow_files():
    for path in sorted((DATA / "deps" / "requirements").glob("*.txt")):
        lines = list(logical_lines(path.read_text()))
        assert lines and all(not line.startswith("#") for _, line in lines)
        assert [n for n, _ in lines] == sorted(n for n, _ in lines)


_names = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,15}[A-Za-z0-9]", fullmatch=True)
_versions = st.from_regex(
    r"v?[0-9]{1,3}(\.[0-9]{1,3}){0,3}((a|b|rc|RC|\.post|-|\.dev)[0-9])?(\+[a-z0-9]{1,4})?",
    fullmatch=True,
)


@given(
    name=_names,
    version=_versions,
    spaces=st.sampled_from(["", " ", "  "]),
    marker=st.sampled_from(["", ' ; python_version >= "3.8"', ';sys_platform == "linux"']),
    hashed=st.booleans(),
)
def test_the_fast_path_reads_like_the_general_parser(
    tmp_path_factory, name, version, spaces, marker, hashed
):
    """Compiled files are mostly `name==version` (with a marker, with hashes): read by a
    fast path that must give what the general PEP 508 path gives."""
    root = tmp_path_factory.mktemp("fast")
    requirement = f"{name}{spaces}=={spaces}{version}{marker}"
    hashes = ("sha256:" + "0" * 64,) if hashed else ()
    line = requirement + "".join(f" --hash={h}" for h in hashes)
    (root / "requirements.txt").write_text(line + "\n")
    (fast,) = _load(root / "requirements.txt")
    slow = parse_requirement(
        requirement,
        source="requirements.txt",
        line_no=1,
        env=LINUX,
        root=root,
        base=root,
        hashes=hashes,
        fast=False,
    )
    assert fast == slow
