"""The streaming comparison (`checks.entries`) gives exactly the findings of the plain
one it replaced, on randomized entries, observations and assignments: as a merge of
sorted streams (`compare`), and block by block against the list's bytes
(`compare_block` + `compare_unlisted`), however the list is cut into blocks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st
from qeguard.hints import DEFAULT, Hints
from qeguard.integrity.checks.entries import (
    _compare_one,
    compare,
    compare_block,
    compare_unlisted,
)
from qeguard.integrity.checks.findings import sign_hint, tier_finding
from qeguard.integrity.layout import list_path
from qeguard.integrity.manifest import (
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    Entry,
    Kind,
    format_list,
    path_key,
    read_list,
    unsafe_path_reason,
)
from qeguard.integrity.policy import Attribute, Tier
from qeguard.integrity.trees.base import Block, Observed, Seen
from qeguard.report import Finding, Severity
from qeguard.rules import RuleId


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
                f"{path} matches tier {tier.name!r} but is not in its manifest",
                title="Unsigned protected file",
                path=path,
                fix=resign,
            )
        )
    return findings


SEEN_AS = {Kind.FILE: Seen.FILE, Kind.SYMLINK: Seen.SYMLINK}
DIGESTS = ["a" * 64, "b" * 64]
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
