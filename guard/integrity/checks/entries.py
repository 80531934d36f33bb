"""Entries against the tree: modified, missing, added, kind, exec bit, symlink target,
unsafe paths. Pure: parsed entries and observations in, findings out.

Everything arrives sorted by path, so the comparison is a merge of sorted streams and
holds no entry it is not looking at; a block of list lines the tree reproduced byte for
byte (the usual case) is settled without parsing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from qeguard.hints import DEFAULT, Hints
from qeguard.integrity.checks.findings import sign_hint, tier_finding
from qeguard.integrity.layout import list_path
from qeguard.integrity.manifest import (
    Entry,
    EntryList,
    Kind,
    display_path,
    line_key,
    parse_list,
    path_key,
    quote_path,
    unsafe_path_reason,
)
from qeguard.integrity.policy import Attribute, Tier
from qeguard.integrity.trees.base import Block, Observed, Seen
from qeguard.report import Finding, Severity
from qeguard.rules import RuleId

SEEN_AS = {Kind.FILE: Seen.FILE, Kind.SYMLINK: Seen.SYMLINK, Kind.GITLINK: Seen.GITLINK}


# Up to this many paths, a staged check reads only their lines from a tier's list instead
# of parsing all of it (a 100,000-line list costs more than the rest of the hook).
PARTIAL_MAX = 512


def entries_for(list_bytes: bytes, paths: frozenset[str], source: str) -> EntryList:
    """The entries for `paths` only. The list as a whole is still bound by its digest and
    line count; each returned line is parsed as strictly as by `parse_list`."""
    found: list[bytes] = []
    for path in paths:
        needle = b" " + quote_path(path).encode("utf-8", "surrogateescape") + b"\n"
        start = 0
        while (hit := list_bytes.find(needle, start)) != -1:
            begin = list_bytes.rfind(b"\n", 0, hit) + 1
            line = list_bytes[begin : hit + len(needle)]
            entries = parse_list(line, source=source)
            if entries and entries[0].path == path:
                found.append(line)
                break
            start = hit + 1
    found.sort(key=lambda line: line_key(line[:-1]))
    return EntryList(b"".join(found), count=len(found))


class _Cursor:
    """Reads a sorted (path, observation) stream up to the paths asked, in order."""

    def __init__(self, items: Iterable[tuple[str, Observed]]):
        self._items: Iterator[tuple[str, Observed]] = iter(items)
        self._head: tuple[bytes, str, Observed] | None = None
        self._advance()

    def _advance(self) -> None:
        item = next(self._items, None)
        self._head = None if item is None else (path_key(item[0]), item[0], item[1])

    def at(self, key: bytes) -> Observed | None:
        """The observation of the path with this key (keys asked never decrease)."""
        while self._head is not None and self._head[0] < key:
            self._advance()
        if self._head is not None and self._head[0] == key:
            return self._head[2]
        return None


def compare(
    tier: Tier,
    entries: Iterable[Entry],
    observed: Iterable[tuple[str, Observed]],
    assigned: Iterable[str] = (),
    *,
    exec_bit_meaningful: bool,
    hints: Hints = DEFAULT,
) -> list[Finding]:
    """Entries against what the tree holds, all three sorted by path (`path_key`).

    `observed` is what the tree holds for the paths it was asked about; a path missing
    from it was not asked for (staged-only verification). `assigned` are the tree paths
    the policy gives this tier: those the list lacks are unsigned files.
    """
    findings: list[Finding] = []
    added: list[Finding] = []
    resign = sign_hint(tier.name, hints)
    seen_at = _Cursor(observed)
    pending = iter(assigned)
    nxt = next(pending, None)
    nxt_key = None if nxt is None else path_key(nxt)
    for e in entries:
        key = path_key(e.path)
        while nxt is not None and nxt_key is not None and nxt_key <= key:
            if nxt_key < key:
                added.extend(_added(tier, nxt, seen_at.at(nxt_key), resign))
            nxt = next(pending, None)
            nxt_key = None if nxt is None else path_key(nxt)
        findings.extend(_check_entry(tier, e, seen_at.at(key), exec_bit_meaningful, resign, hints))
    while nxt is not None and nxt_key is not None:
        added.extend(_added(tier, nxt, seen_at.at(nxt_key), resign))
        nxt = next(pending, None)
        nxt_key = None if nxt is None else path_key(nxt)
    return findings + added


def compare_block(
    tier: Tier,
    listed: EntryList,
    block: Block,
    *,
    exec_bit_meaningful: bool,
    hints: Hints = DEFAULT,
) -> list[Finding]:
    """One block of a tier's list against what the tree holds for it. When the tree's
    lines are the list's own bytes nothing can differ; otherwise the block's lines are
    parsed and merged with the observations."""
    if not block.others and block.lines == listed.data[block.start : block.end]:
        return []
    entries = (e for _, e in listed.entries(block.start, block.end))
    return compare(
        tier, entries, block.observed(), exec_bit_meaningful=exec_bit_meaningful, hints=hints
    )


def compare_unlisted(
    tier: Tier,
    listed: EntryList,
    unlisted: Iterable[tuple[str, Observed]],
    *,
    hints: Hints = DEFAULT,
) -> list[Finding]:
    """Tree paths the policy gives this tier, with what each is: those the list lacks are
    unsigned files."""
    resign = sign_hint(tier.name, hints)
    out: list[Finding] = []
    for path, seen in unlisted:
        if listed.get(path) is None:
            out.extend(_added(tier, path, seen, resign))
    return out


def _added(tier: Tier, path: str, seen: Observed | None, resign: str) -> list[Finding]:
    if seen is None or seen.seen in (Seen.MISSING, Seen.DIRECTORY):
        return []
    return [
        tier_finding(
            RuleId.INT_ADDED,
            tier,
            f"{display_path(path)} matches tier {tier.name!r} but is not in its manifest",
            title="Unsigned protected file",
            path=path,
            fix=resign,
        )
    ]


def _check_entry(
    tier: Tier,
    e: Entry,
    seen: Observed | None,
    exec_meaningful: bool,
    resign: str,
    hints: Hints,
) -> list[Finding]:
    reason = unsafe_path_reason(e.path)
    if reason:
        return [
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
        ]
    if seen is None:
        return []  # not asked for (staged-only verification)
    if seen.sha256 == e.sha256 and seen.mode == e.mode and seen.seen is SEEN_AS[e.kind]:
        return []  # unchanged, the usual case: no attribute can differ
    return _compare_one(
        tier, e, seen, exec_meaningful, f"{hints.restore(e.path)}  (or re-sign: {resign})", hints
    )


def _compare_one(
    tier: Tier, e: Entry, seen: Observed, exec_meaningful: bool, fix: str, hints: Hints
) -> list[Finding]:
    attrs = tier.attributes
    path = e.path
    if seen.seen is Seen.MISSING:
        return [
            tier_finding(
                RuleId.INT_MISSING,
                tier,
                f"{display_path(path)} is listed in tier {tier.name!r} but missing",
                title="Protected file missing",
                path=path,
                fix=fix,
            )
        ]
    if seen.seen is Seen.UNREADABLE:
        return [
            tier_finding(
                RuleId.INT_UNREADABLE,
                tier,
                f"{display_path(path)} cannot be read: {seen.error}",
                title="Protected file unreadable",
                path=path,
                fix="fix its permissions, then re-run qeguard verify",
            )
        ]
    want = e.kind.value
    got = seen.seen.value
    if seen.seen is not SEEN_AS[e.kind]:
        if (
            Attribute.KIND not in attrs
            and e.kind is not Kind.GITLINK
            and seen.seen in (Seen.FILE, Seen.SYMLINK)
        ):
            pass
        else:
            extra = f" ({seen.error})" if seen.error else ""
            return [
                tier_finding(
                    RuleId.INT_KIND,
                    tier,
                    f"{display_path(path)} was signed as a {want} but is now a {got}{extra}",
                    title="File kind changed",
                    path=path,
                    fix=fix,
                    details={"signed": want, "found": got},
                )
            ]
    out: list[Finding] = []
    if seen.sha256 != e.sha256 and Attribute.CONTENT in attrs:
        if e.kind is Kind.GITLINK:
            out.append(
                tier_finding(
                    RuleId.INT_MODIFIED,
                    tier,
                    f"submodule {display_path(path)} is at commit {seen.sha256}, "
                    f"signed {e.sha256} in tier {tier.name!r}",
                    title="Protected submodule moved",
                    path=path,
                    fix=f"{hints.submodule_update(path)}  (or re-sign: "
                    f"{sign_hint(tier.name, hints)})",
                    details={"signed": e.sha256, "found": seen.sha256},
                )
            )
        elif e.kind is Kind.SYMLINK and seen.seen is Seen.SYMLINK:
            out.append(
                tier_finding(
                    RuleId.INT_SYMLINK,
                    tier,
                    f"{display_path(path)} now points to {seen.target!r}",
                    title="Symlink retargeted",
                    path=path,
                    fix=fix,
                )
            )
        else:
            out.append(
                tier_finding(
                    RuleId.INT_MODIFIED,
                    tier,
                    f"{display_path(path)} differs from its signed content in tier {tier.name!r}",
                    title="Protected file modified",
                    path=path,
                    fix=fix,
                    details={"signed": e.sha256, "found": seen.sha256},
                )
            )
    if (
        Attribute.EXEC in attrs
        and exec_meaningful
        and e.kind is Kind.FILE
        and seen.seen is Seen.FILE
        and seen.mode != e.mode
    ):
        out.append(
            tier_finding(
                RuleId.INT_EXEC,
                tier,
                f"{display_path(path)}'s mode is {seen.mode}, signed {e.mode}",
                title="Executable bit changed",
                path=path,
                fix=f"{hints.chmod(path, executable=e.executable)}  (or re-sign: "
                f"{sign_hint(tier.name, hints)})",
            )
        )
    return out
