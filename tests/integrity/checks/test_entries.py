"""checks.entries, fed parsed entries and observations: every way a tree can differ from
its signed list, and the partial lookup the hooks use."""

from __future__ import annotations

import hashlib

import pytest
from helpers.memory import File, Gitlink, Link, MemoryTree, observe_content
from qeguard.integrity.checks.entries import compare, entries_for
from qeguard.integrity.manifest import (
    MODE_EXEC,
    MODE_FILE,
    MODE_GITLINK,
    MODE_LINK,
    Entry,
    Kind,
    format_list,
)
from qeguard.integrity.policy import Attribute, Tier
from qeguard.report import Finding
from qeguard.rules import RuleId

TIER = Tier(name="core", patterns=("**",), threshold=1)
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def _file(path: str, data: bytes, mode: str = MODE_FILE) -> Entry:
    return Entry(path=path, sha256=hashlib.sha256(data).hexdigest(), mode=mode, kind=Kind.FILE)


def _link(path: str, target: str) -> Entry:
    digest = hashlib.sha256(target.encode()).hexdigest()
    return Entry(path=path, sha256=digest, mode=MODE_LINK, kind=Kind.SYMLINK)


def _gitlink(path: str, commit: str) -> Entry:
    return Entry(path=path, sha256=commit, mode=MODE_GITLINK, kind=Kind.GITLINK)


def _compare(
    entries: list[Entry], tree: MemoryTree, *, tier: Tier = TIER, exec_bit: bool = True
) -> list[Finding]:
    paths = tree.candidates()
    wanted = sorted({*paths, *(e.path for e in entries)})
    return compare(tier, entries, paths, tree.observe(wanted), exec_bit_meaningful=exec_bit)


def _rules(findings: list[Finding]) -> list[str]:
    return sorted(f"{f.rule} {f.location.path if f.location else ''}" for f in findings)


SIGNED = [
    _file("a.py", b"a\n"),
    _file("run.sh", b"#!/bin/sh\n", MODE_EXEC),
    _link("current", "a.py"),
    _gitlink("vendor/lib", COMMIT_A),
]


Change = bytes | File | Link | Gitlink | None


def _tree(changes: dict[str, Change] | None = None) -> MemoryTree:
    """The signed tree, with `changes` applied (None removes a path)."""
    files: dict[str, bytes | File | Link | Gitlink] = {
        "a.py": b"a\n",
        "run.sh": File(b"#!/bin/sh\n", executable=True),
        "current": Link("a.py"),
        "vendor/lib": Gitlink(COMMIT_A),
    }
    for path, value in (changes or {}).items():
        if value is None:
            files.pop(path)
        else:
            files[path] = value
    return MemoryTree(files)


def test_an_unchanged_tree_is_clean() -> None:
    assert _compare(SIGNED, _tree()) == []


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"a.py": b"a = 2\n"}, "QG-INT-MODIFIED a.py"),
        ({"a.py": b"a\r\n"}, "QG-INT-MODIFIED a.py"),  # one CR is a change
        ({"a.py": None}, "QG-INT-MISSING a.py"),
        ({"a.py": Link("run.sh")}, "QG-INT-KIND a.py"),
        ({"current": b"a\n"}, "QG-INT-KIND current"),
        ({"current": Link("run.sh")}, "QG-INT-SYMLINK current"),
        ({"run.sh": b"#!/bin/sh\n"}, "QG-INT-EXEC run.sh"),
        ({"vendor/lib": Gitlink(COMMIT_B)}, "QG-INT-MODIFIED vendor/lib"),
        ({"vendor/lib": b"not a submodule\n"}, "QG-INT-KIND vendor/lib"),
        ({"vendor/lib": None}, "QG-INT-MISSING vendor/lib"),
        ({"new.py": b"x\n"}, "QG-INT-ADDED new.py"),
        ({"vendor/new": Gitlink(COMMIT_B)}, "QG-INT-ADDED vendor/new"),
    ],
)
def test_each_difference_is_one_finding(changes: dict[str, Change], rule: str) -> None:
    assert _rules(_compare(SIGNED, _tree(changes))) == [rule]


def test_a_moved_submodule_names_both_commits() -> None:
    (finding,) = _compare(SIGNED, _tree({"vendor/lib": Gitlink(COMMIT_B)}))
    assert COMMIT_A in finding.message and COMMIT_B in finding.message
    assert finding.fix is not None and "git submodule update --init -- vendor/lib" in finding.fix


def test_without_the_kind_attribute_file_and_symlink_swap_but_a_gitlink_never() -> None:
    tier = Tier(
        name="core",
        patterns=("**",),
        threshold=1,
        attributes=frozenset({Attribute.CONTENT, Attribute.EXEC}),
    )
    # A symlink whose target hashes like the signed file's content counts as unchanged.
    swapped = _tree({"a.py": Link("a\n")})
    assert _compare(SIGNED, swapped, tier=tier) == []
    moved = _tree({"vendor/lib": b"x\n"})
    assert _rules(_compare(SIGNED, moved, tier=tier)) == ["QG-INT-KIND vendor/lib"]


def test_exec_bit_only_where_it_means_something() -> None:
    tree = _tree({"run.sh": b"#!/bin/sh\n"})
    assert _compare(SIGNED, tree, exec_bit=False) == []


@pytest.mark.parametrize(
    "path", ["../outside", "/etc/passwd", ".git/hooks/pre-commit", "a/./b", "sub/.GIT/config"]
)
def test_unsafe_entry_paths_are_critical(path: str) -> None:
    findings = _compare([*SIGNED, _file(path, b"x")], _tree())
    assert _rules(findings) == ["QG-INT-PATH .qeguard/manifests/core.list"]
    assert findings[0].severity.value == "critical"


def test_a_file_name_cannot_forge_a_report_line() -> None:
    name = "src/x\n0 findings. Verdict: PASS"
    (finding,) = _compare(SIGNED, _tree({name: b"evil\n"}))
    assert finding.rule == RuleId.INT_ADDED
    assert "\n" not in finding.message
    assert '"src/x\\n0 findings. Verdict: PASS"' in finding.message
    assert finding.location is not None and finding.location.path == name


def test_observations_of_memory_content() -> None:
    assert observe_content(Gitlink(COMMIT_A)).as_entry("m") == _gitlink("m", COMMIT_A)
    assert observe_content(Link("t")).as_entry("l") == _link("l", "t")


def test_entries_for_reads_only_the_asked_lines() -> None:
    entries = [
        _file("a.py", b"a"),
        _file("tab\tname.py", b"t"),  # quoted in the list
        _gitlink("vendor/lib", COMMIT_A),
        _file("x/a.py", b"suffix of a.py"),
    ]
    data = format_list(entries)
    got = entries_for(data, frozenset({"a.py", "tab\tname.py", "vendor/lib", "gone"}), "l")
    assert got == [entries[0], entries[1], entries[2]]  # in the order of the paths
    assert entries_for(data, frozenset({"x/a.py"}), "l") == [entries[3]]
