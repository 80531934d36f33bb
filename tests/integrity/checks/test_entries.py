"""checks.entries, fed parsed entries and observations: every way a tree can differ from
its signed list, and the partial lookup the hooks use."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import pytest
from helpers.memory import File, Gitlink, Link, MemoryTree, observe_content
from hypothesis import given, settings
from hypothesis import strategies as st
from qeguard.hints import DEFAULT, Hints
from qeguard.integrity.checks.entries import (
    _compare_one,
    compare,
    compare_block,
    compare_unlisted,
    entries_for,
)
from qeguard.integrity.checks.findings import sign_hint, tier_finding
from qeguard.integrity.layout import list_path
from qeguard.integrity.manifest import (
    MODE_EXEC,
    MODE_FILE,
    MODE_GITLINK,
    MODE_LINK,
    Entry,
    Kind,
    display_path,
    format_list,
    path_key,
    read_list,
    unsafe_path_reason,
)
from qeguard.integrity.policy import Attribute, Tier
from qeguard.integrity.trees.base import Block, Observed, Seen, gitlink
from qeguard.report import Finding, Severity
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
    paths = sorted(tree.candidates(), key=path_key)
    wanted = sorted({*paths, *(e.path for e in entries)}, key=path_key)
    observed = tree.observe(wanted)
    # The comparison is a merge: everything sorted by path as lists are.
    return compare(
        tier,
        sorted(entries, key=lambda e: path_key(e.path)),
        [(p, observed[p]) for p in wanted],
        paths,
        exec_bit_meaningful=exec_bit,
    )


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
    assert list(got) == [entries[0], entries[1], entries[2]]  # in the order of the paths
    assert list(entries_for(data, frozenset({"x/a.py"}), "l")) == [entries[3]]


# --- the streaming comparison against the plain one it replaced ------------------------
# `compare` is a merge of sorted streams and `compare_block` settles a block of list lines
# the tree reproduced as bytes; on randomized entries, observations and assignments both
# give exactly the findings of the plain comparison, however the list is cut into blocks.


def reference_compare(
    tier: Tier,
    entries: Iterable[Entry],
    assigned: Iterable[str],
    observed: Mapping[str, Observed],
    *,
    exec_bit_meaningful: bool,
    hints: Hints = DEFAULT,
) -> list[Finding]:
    """The comparison before streaming, as it was (a mapping of observations)."""
    findings: list[Finding] = []
    listed: set[str] = set()
    resign = sign_hint(tier.name, hints)
    for e in entries:
        listed.add(e.path)
        reason = unsafe_path_reason(e.path)
        if reason:
            findings.append(
                tier_finding(
                    RuleId.INT_PATH,
                    tier,
                    f"manifest entry {e.path!r} is unsafe: {reason}",
                    title="Unsafe manifest path",
                    path=list_path(tier.name),
                    severity=Severity.CRITICAL,
                    fix=resign,
                    details={"entry": e.path},
                )
            )
            continue
        seen = observed.get(e.path)
        if seen is None:
            continue
        if seen.sha256 == e.sha256 and seen.mode == e.mode and seen.seen is SEEN_AS[e.kind]:
            continue
        findings.extend(
            _compare_one(
                tier,
                e,
                seen,
                exec_bit_meaningful,
                f"{hints.restore(e.path)}  (or re-sign: {resign})",
                hints,
            )
        )
    for path in assigned:
        if path in listed:
            continue
        seen = observed.get(path)
        if seen is None or seen.seen in (Seen.MISSING, Seen.DIRECTORY):
            continue
        findings.append(
            tier_finding(
                RuleId.INT_ADDED,
                tier,
                f"{display_path(path)} matches tier {tier.name!r} but is not in its manifest",
                title="Unsigned protected file",
                path=path,
                fix=resign,
            )
        )
    return findings


SEEN_AS = {Kind.FILE: Seen.FILE, Kind.SYMLINK: Seen.SYMLINK, Kind.GITLINK: Seen.GITLINK}
DIGESTS = ["a" * 64, "b" * 64]
COMMITS = [COMMIT_A, COMMIT_B, "c" * 64]
# Plain, nested, hostile and unsafe names; "\udcff" is an undecodable byte on disk.
NAMES = ["a", "a/b", "a/b/c", "b", "b.py", "a b", 'q"', "t\tx", "\u00e9", "z\udcff", "x\\y"]
NAMES += ["../up", "a//b", ".git/config", "/abs", ""]

observations = st.one_of(
    st.builds(
        lambda d, m: Observed(seen=Seen.FILE, sha256=d, mode=m),
        st.sampled_from(DIGESTS),
        st.sampled_from([MODE_FILE, MODE_EXEC]),
    ),
    st.builds(
        lambda d, t: Observed(seen=Seen.SYMLINK, sha256=d, mode=MODE_LINK, target=t),
        st.sampled_from(DIGESTS),
        st.sampled_from(["x", "../y"]),
    ),
    st.builds(gitlink, st.sampled_from(COMMITS)),
    st.sampled_from(
        [
            Observed(seen=Seen.MISSING),
            Observed(seen=Seen.DIRECTORY),
            Observed(seen=Seen.OTHER, error="not a regular file"),
            Observed(seen=Seen.UNREADABLE, mode=MODE_FILE, error="Permission denied"),
        ]
    ),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Tier, list[Entry], dict[str, Observed], list[str], bool]:
    paths = sorted(draw(st.sets(st.sampled_from(NAMES))), key=path_key)
    entries = []
    for p in paths:
        kind = draw(st.sampled_from(list(Kind)))
        if kind is Kind.GITLINK:
            entries.append(
                Entry(path=p, sha256=draw(st.sampled_from(COMMITS)), mode=MODE_GITLINK, kind=kind)
            )
            continue
        mode = MODE_LINK if kind is Kind.SYMLINK else draw(st.sampled_from([MODE_FILE, MODE_EXEC]))
        entries.append(Entry(path=p, sha256=draw(st.sampled_from(DIGESTS)), mode=mode, kind=kind))
    everything = sorted(set(NAMES) - {""}, key=path_key)
    observed = {p: draw(observations) for p in draw(st.sets(st.sampled_from(everything)))}
    assigned = sorted(draw(st.sets(st.sampled_from(everything))), key=path_key)
    attributes = draw(st.sets(st.sampled_from(list(Attribute))))
    tier = Tier(name="t", patterns=("**",), threshold=1, attributes=frozenset(attributes))
    return tier, entries, observed, assigned, draw(st.booleans())


@settings(max_examples=400, deadline=None)
@given(cases())
def test_streaming_compare_equals_the_plain_one(
    case: tuple[Tier, list[Entry], dict[str, Observed], list[str], bool],
) -> None:
    tier, entries, observed, assigned, exec_bit = case
    want = reference_compare(tier, entries, assigned, observed, exec_bit_meaningful=exec_bit)
    stream = sorted(observed.items(), key=lambda item: path_key(item[0]))
    assert compare(tier, entries, stream, assigned, exec_bit_meaningful=exec_bit) == want


@settings(max_examples=400, deadline=None)
@given(cases(), st.lists(st.integers(min_value=1, max_value=4), max_size=8))
def test_blocks_equal_the_plain_compare(
    case: tuple[Tier, list[Entry], dict[str, Observed], list[str], bool], cuts: list[int]
) -> None:
    """What a tree's scan gives: the list cut into blocks, each with the tree's lines for
    its listed paths that are files or symlinks and the other observations (an unsafe or
    unobserved path in neither), then the assigned paths with their observations."""
    tier, entries, observed, assigned, exec_bit = case
    want = reference_compare(tier, entries, assigned, observed, exec_bit_meaningful=exec_bit)
    listed = read_list(format_list(entries), source="t")
    offsets = [offset for offset, _ in listed.entries()] + [len(listed.data)]
    got: list[Finding] = []
    at = 0
    for size in [*cuts, len(entries) + 1]:
        if at >= len(entries):
            break
        end = min(at + size, len(entries))
        lines: list[str] = []
        others: list[tuple[str, Observed]] = []
        targets: dict[str, str] = {}
        for e in entries[at:end]:
            seen = observed.get(e.path)
            if seen is None or unsafe_path_reason(e.path) is not None:
                continue
            as_entry = seen.as_entry(e.path)
            if as_entry is None:
                others.append((e.path, seen))
            else:
                lines.append(as_entry.line() + "\n")
                if seen.target is not None:
                    targets[e.path] = seen.target
        block = Block(
            start=offsets[at],
            end=offsets[end],
            lines="".join(lines).encode("utf-8", "surrogateescape"),
            others=tuple(others),
            targets=targets,
        )
        got += compare_block(tier, listed, block, exec_bit_meaningful=exec_bit)
        at = end
    unlisted = [(p, observed[p]) for p in assigned if p in observed]
    got += compare_unlisted(tier, listed, unlisted)
    assert got == want


def test_an_unchanged_block_is_settled_by_its_bytes() -> None:
    entries = [
        Entry(path=f"f{i}", sha256="c" * 64, mode=MODE_FILE, kind=Kind.FILE) for i in range(3)
    ]
    listed = read_list(format_list(entries), source="t")
    tier = Tier(name="t", patterns=("**",), threshold=1)
    same = Block(start=0, end=len(listed.data), lines=listed.data)
    assert compare_block(tier, listed, same, exec_bit_meaningful=True) == []
    # One byte of one hash differs: that entry, and only it, is modified.
    changed = listed.data.replace(
        b"c" * 64 + b" 100644 file f1", b"d" + b"c" * 63 + b" 100644 file f1"
    )
    out = compare_block(
        tier, listed, Block(start=0, end=len(listed.data), lines=changed), exec_bit_meaningful=True
    )
    assert [(f.rule, f.location.path if f.location else None) for f in out] == [
        (RuleId.INT_MODIFIED, "f1")
    ]
