"""Entries against the tree: modified, missing, added, kind, exec bit, symlink target,
unsafe paths. Pure: parsed entries and observations in, findings out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from qeguard.hints import DEFAULT, Hints
from qeguard.integrity.checks.findings import sign_hint, tier_finding
from qeguard.integrity.layout import list_path
from qeguard.integrity.manifest import (
    Entry,
    Kind,
    display_path,
    parse_list,
    quote_path,
    unsafe_path_reason,
)
from qeguard.integrity.policy import Attribute, Tier
from qeguard.integrity.trees.base import Observed, Seen
from qeguard.report import Finding, Severity
from qeguard.rules import RuleId

SEEN_AS = {Kind.FILE: Seen.FILE, Kind.SYMLINK: Seen.SYMLINK, Kind.GITLINK: Seen.GITLINK}


# Up to this many paths, a staged check reads only their lines from a tier's list instead
# of parsing all of it (a 100,000-line list costs more than the rest of the hook).
PARTIAL_MAX = 512


def entries_for(list_bytes: bytes, paths: frozenset[str], source: str) -> list[Entry]:
    """The entries for `paths` only. The list as a whole is still bound by its digest and
    line count; each returned line is parsed as strictly as by `parse_list`."""
    out: list[Entry] = []
    for path in sorted(paths):
        needle = b" " + quote_path(path).encode("utf-8", "surrogateescape") + b"\n"
        start = 0
        while (hit := list_bytes.find(needle, start)) != -1:
            begin = list_bytes.rfind(b"\n", 0, hit) + 1
            line = list_bytes[begin : hit + len(needle)]
            found = parse_list(line, source=source)
            if found and found[0].path == path:
                out.append(found[0])
                break
            start = hit + 1
    return out


def compare(
    tier: Tier,
    entries: Iterable[Entry],
    assigned: Iterable[str],
    observed: Mapping[str, Observed],
    *,
    exec_bit_meaningful: bool,
    hints: Hints = DEFAULT,
) -> list[Finding]:
    """Entries against what the tree holds. `assigned` = tree paths the policy gives this tier."""
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
            continue  # not asked for (staged-only verification)
        if seen.sha256 == e.sha256 and seen.mode == e.mode and seen.seen is SEEN_AS[e.kind]:
            continue  # unchanged, the usual case: no attribute can differ
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
