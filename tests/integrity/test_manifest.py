"""The manifest list format, path quoting and the payload."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qeguard.errors import EnvelopeError
from qeguard.integrity.manifest import (
    MODE_EXEC,
    MODE_FILE,
    MODE_GITLINK,
    MODE_LINK,
    SCHEMA,
    Entry,
    Kind,
    Payload,
    display_path,
    format_list,
    new_payload,
    parse_list,
    quote_path,
    unquote_path,
    unsafe_path_reason,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file names are bytes")

# Paths as a POSIX file system can hand them over: any bytes but NUL and "/" per
# component, decoded with surrogateescape, so invalid UTF-8 appears as lone surrogates.
_component = st.binary(min_size=1, max_size=12).filter(
    lambda b: b"\x00" not in b and b"/" not in b and b not in (b".", b"..")
)
byte_paths = st.lists(_component, min_size=1, max_size=4).map(
    lambda parts: os.fsdecode(b"/".join(parts))
)
text_paths = st.text(min_size=1, max_size=30)
any_path = st.one_of(text_paths, byte_paths) if os.name == "posix" else text_paths
interesting = st.sampled_from(
    [
        "a b",
        "tab\there",
        "new\nline",
        'quo"te',
        "back\\slash",
        "caf\u00e9/\u00fc.py",
        "bell\x07",
        "del\x7f",
        " lead",
        "trail ",
        '"starts-with-quote',
        "\u4e2d\u6587.md",
        "nel\x85x",
        "ls\u2028x",
        "ps\u2029x",
        "fs\x1cx",
    ]
)


def _entry(path: str, i: int = 0, kind: Kind = Kind.FILE) -> Entry:
    digest = hashlib.sha256(f"{path}{i}".encode("utf-8", "surrogateescape")).hexdigest()
    if kind is Kind.GITLINK:
        # A commit id: SHA-1 (40 hex digits) or, in a SHA-256 repository, 64.
        return Entry(path=path, sha256=digest[: 40 if i % 2 else 64], mode=MODE_GITLINK, kind=kind)
    mode = MODE_LINK if kind is Kind.SYMLINK else (MODE_EXEC if i % 2 else MODE_FILE)
    return Entry(path=path, sha256=digest, mode=mode, kind=kind)


@given(st.one_of(any_path, interesting))
def test_quote_unquote_round_trip(path: str) -> None:
    quoted = quote_path(path)
    assert unquote_path(quoted) == path
    # A quoted path never contains a raw line break or control character, so one entry
    # is always exactly one line.
    assert "\n" not in quoted and "\r" not in quoted
    assert not any(ord(c) < 0x20 for c in quoted)


@given(st.lists(st.one_of(any_path, interesting), unique=True, max_size=12), st.data())
@settings(max_examples=200)
def test_list_format_parse_round_trip(paths: list[str], data: st.DataObject) -> None:
    entries = [_entry(p, i, data.draw(st.sampled_from(list(Kind)))) for i, p in enumerate(paths)]
    blob = format_list(entries)
    parsed = parse_list(blob, source="x.list")
    assert parsed == sorted(entries, key=lambda e: e.path.encode("utf-8", "surrogateescape"))
    assert format_list(parsed) == blob
    assert blob.count(b"\n") == len(entries)
    assert b"\r" not in blob


@posix_only
def test_unicode_line_separators_stay_in_one_entry() -> None:
    # Regression: parse_list split on U+0085/U+2028 (str.splitlines), breaking entries.
    entries = [_entry("a\x85b"), _entry("c\u2028d"), _entry("e\u2029f")]
    assert parse_list(format_list(entries), source="x") == entries


@posix_only
def test_invalid_utf8_is_octal_quoted_like_git() -> None:
    path = os.fsdecode(b"bad\xff\xfename")
    assert quote_path(path) == '"bad\\377\\376name"'
    assert unquote_path('"bad\\377\\376name"') == path


def test_plain_paths_are_not_quoted() -> None:
    assert quote_path("src/pkg/m\u00f6dule.py") == "src/pkg/m\u00f6dule.py"
    assert quote_path('a"b') == '"a\\"b"'
    assert quote_path("a\\b\tc") == '"a\\\\b\\tc"'


@posix_only
def test_unquote_reads_gits_own_quoting(tmp_path: Path) -> None:
    # git's default core.quotePath=true writes non-ASCII as octal; we must read that too.
    names = ["tab\tx", 'q"x', "b\\x", "caf\u00e9", "nl\nx"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for n in names:
        (tmp_path / n).write_text("x")
    out = subprocess.run(
        ["git", "ls-files", "--others"], cwd=tmp_path, check=True, capture_output=True
    ).stdout.decode("utf-8")
    got = {unquote_path(line) for line in out.splitlines()}
    assert got == set(names)
    # With quotePath=false, git and qeguard quote valid UTF-8 the same way.
    out = subprocess.run(
        ["git", "-c", "core.quotePath=false", "ls-files", "--others"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")
    assert sorted(out.splitlines()) == sorted(quote_path(n) for n in names)


@pytest.mark.parametrize(
    "text",
    ['"unterminated', '"dangling\\"', '"bad\\q"', '"bad\\39x"', '"inner"quote"', '"'],
)
def test_unquote_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        unquote_path(text)


H = "a" * 64


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"nope\n", "expected `<sha256> <mode> <kind> <path>`"),
        (f"{'A' * 64} 100644 file a\n".encode(), "64 lower-case hex"),
        (f"{H} 100600 file a\n".encode(), "unknown mode"),
        (f"{H} 100644 dir a\n".encode(), "unknown kind"),
        (f"{H} 120000 file a\n".encode(), "mode and kind disagree"),
        (f"{H} 100644 symlink a\n".encode(), "mode and kind disagree"),
        (f"{H} 160000 file a\n".encode(), "mode and kind disagree"),
        (f"{H} 100644 gitlink a\n".encode(), "mode and kind disagree"),
        (f"{'a' * 40} 100644 file a\n".encode(), "64 lower-case hex"),
        (f"{'a' * 41} 160000 gitlink a\n".encode(), "64 lower-case hex"),
        (f"{H} 100644 file b\n{H} 100644 file a\n".encode(), "not sorted"),
        (f"{H} 100644 file a\n{H} 100644 file a\n".encode(), "path repeats"),
        (f"{H} 100644 file a".encode(), "no line end"),
        (f"{H} 100644 file a\r\n".encode(), "CR characters"),
        (f'{H} 100644 file "a\\q"\n'.encode(), "bad path quoting"),
    ],
)
def test_parse_list_is_strict(data: bytes, needle: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_list(data, source="core.list")
    assert needle in info.value.diagnostics()
    assert "core.list" in info.value.diagnostics()


def test_parse_list_names_the_line() -> None:
    data = f"{H} 100644 file a\n{H} 100644 file b\nbroken\n".encode()
    with pytest.raises(EnvelopeError) as info:
        parse_list(data, source="core.list")
    assert info.value.where == "core.list:3"


def test_empty_list_is_empty_bytes() -> None:
    assert format_list([]) == b""
    assert parse_list(b"", source="x") == []


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty path"),
        ("/etc/passwd", "absolute path"),
        ("C:/Windows/x", "absolute path"),
        ("\\\\server\\share", "absolute path"),
        ("../outside", "'..'"),
        ("a/../../b", "'..'"),
        ("a/./b", "'.'"),
        ("a//b", "empty component"),
        ("a/", "empty component"),
        (".git/config", ".git"),
        ("sub/.git/hooks/pre-commit", ".git"),
        (".GIT/config", ".git"),
        ("sub/.Git/hooks/x", ".git"),
        ("a\x00b", "NUL"),
    ],
)
def test_unsafe_paths(path: str, reason: str) -> None:
    for windows in (False, True):
        got = unsafe_path_reason(path, windows=windows)
        assert got is not None and reason in got


@pytest.mark.parametrize(
    "path", ["a", "src/pkg/__init__.py", ".github/x.yml", "a b/c..d", ".gitignore", "x.git/y"]
)
def test_safe_paths(path: str) -> None:
    assert unsafe_path_reason(path, windows=False) is None
    assert unsafe_path_reason(path, windows=True) is None


@pytest.mark.parametrize("path", ["a\\..\\b", "src\\core\\x.py", "x.py:stream", "a/b:c"])
def test_backslash_and_colon_are_names_on_posix_separators_on_windows(path: str) -> None:
    # git stores such names and a POSIX checkout holds them as one file name, so `sign`
    # lists them and `verify` accepts them; on Windows they would name another path.
    assert unsafe_path_reason(path, windows=False) is None
    got = unsafe_path_reason(path, windows=True)
    assert got is not None and "backslash or colon" in got


@given(st.one_of(any_path, interesting))
def test_display_path_is_one_line_and_names_the_path(path: str) -> None:
    shown = display_path(path)
    # No C0 control and no DEL, so no line break; C1 controls, valid UTF-8 that git does
    # not quote either, are each renderer's to escape (render.text.clean does).
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in shown)
    assert unquote_path(shown) == path


def test_display_path_cannot_forge_a_report_line() -> None:
    shown = display_path("x\n0 findings. Verdict: PASS")
    assert shown == '"x\\n0 findings. Verdict: PASS"'
    assert display_path("src/pkg/core/model.py") == "src/pkg/core/model.py"


NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _payload(**over: object) -> Payload:
    p = new_payload(
        tier="core",
        sequence=3,
        list_bytes=b"x\n",
        count=1,
        policy_sha256="f" * 64,
        now=NOW,
        expires_days=10,
        git_commit="c" * 40,
    )
    return dataclasses.replace(p, **over)  # type: ignore[arg-type]


def test_payload_fields_and_round_trip() -> None:
    p = _payload()
    assert p.created == "2025-01-02T03:04:05Z"
    assert p.expires == "2025-01-12T03:04:05Z"
    assert p.expires_at == NOW + timedelta(days=10)
    assert p.list_sha256 == hashlib.sha256(b"x\n").hexdigest()
    data = p.to_bytes()
    assert data.startswith(b'{"count":1,"created":') and b" " not in data
    assert Payload.from_bytes(data, source="e") == p
    assert p.to_dict()["schema"] == SCHEMA


def test_binds_same_ignores_dates_only() -> None:
    p = _payload()
    assert p.binds_same(_payload(created="2030-01-01T00:00:00Z", sequence=9))
    assert not p.binds_same(_payload(list_sha256="0" * 64))
    assert not p.binds_same(_payload(policy_sha256="0" * 64))
    assert not p.binds_same(_payload(tier="middle"))
    assert not p.binds_same(_payload(count=2))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"schema": "other/v9"}, "unknown payload schema"),
        ({"sequence": "1"}, "`sequence` must be int"),
        ({"sequence": True}, "`sequence` must be int"),
        ({"count": None}, "`count` must be int"),
        ({"tier": 1}, "`tier` must be str"),
        ({"expires": "tomorrow"}, "not an RFC 3339 time"),
        ({"created": "2025-01-01T00:00:00"}, "not an RFC 3339 time"),
        ({"sequence": 0}, "sequence must be >= 1"),
        ({"count": -1}, "count >= 0"),
        ({"git_commit": 5}, "`git_commit` must be str"),
        ({"list_sha256": "A" * 64}, "64 lower-case hex"),
        ({"policy_sha256": "0" * 63}, "64 lower-case hex"),
        ({"signed_by": "me"}, "unknown payload field(s) signed_by"),
    ],
)
def test_payload_is_strict(change: dict[str, object], needle: str) -> None:
    doc = {**_payload().to_dict(), **change}
    with pytest.raises(EnvelopeError) as info:
        Payload.from_dict(doc, source="core.dsse.json")
    assert needle in info.value.diagnostics()


def test_payload_not_json() -> None:
    with pytest.raises(EnvelopeError, match="not valid payload"):
        Payload.from_bytes(b"\x00", source="e")
    with pytest.raises(EnvelopeError, match="not UTF-8"):
        Payload.from_bytes(b"\xff", source="e")
    with pytest.raises(EnvelopeError, match="JSON object"):
        Payload.from_bytes(b"[1]", source="e")


def test_a_duplicate_payload_key_is_rejected_not_resolved() -> None:
    # Python's json keeps the last `sequence`, another parser the first: the signed bytes
    # must have one meaning, so neither wins.
    data = _payload(sequence=3).to_bytes()
    forged = data.replace(b'"sequence":3', b'"sequence":3,"sequence":99')
    with pytest.raises(EnvelopeError, match="key 'sequence' more than once"):
        Payload.from_bytes(forged, source="e")


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.replace(b'{"count"', b'{ "count"'),  # white space
        lambda d: d + b"\n",  # a trailing line end
        lambda d: d.replace(b'"count":1,', b"").replace(b"}", b',"count":1}'),  # key order
        lambda d: d.replace(b'"tier":"core"', b'"tier":"\\u0063ore"'),  # an escape
        lambda d: d.replace(b'"count":1', b'"count":1.0'),  # a float
        lambda d: d.replace(b'"count":1', b'"count":NaN'),  # not JSON at all
    ],
)
def test_a_non_canonical_payload_is_rejected(edit: object) -> None:
    data = _payload().to_bytes()
    forged = edit(data)  # type: ignore[operator]
    assert forged != data
    with pytest.raises(EnvelopeError):
        Payload.from_bytes(forged, source="e")


@given(
    st.integers(min_value=1, max_value=2**63),
    st.integers(min_value=0, max_value=10**6),
    st.text(min_size=1, max_size=20),
    st.one_of(st.none(), st.text(max_size=40)),
)
def test_payload_bytes_round_trip(sequence: int, count: int, tier: str, commit: str | None) -> None:
    p = _payload(sequence=sequence, count=count, tier=tier, git_commit=commit or None)
    data = p.to_bytes()
    assert Payload.from_bytes(data, source="e") == p
    assert Payload.from_bytes(data, source="e").to_bytes() == data


def test_gitlink_lines() -> None:
    sha1 = "1" * 40
    data = f"{sha1} 160000 gitlink vendor/lib\n{H} 100644 file x\n".encode()
    (link, file) = parse_list(data, source="core.list")
    assert link == Entry(path="vendor/lib", sha256=sha1, mode=MODE_GITLINK, kind=Kind.GITLINK)
    assert file.kind is Kind.FILE
    assert format_list([file, link]) == data
    # A SHA-256 repository's commit ids have 64 digits.
    assert parse_list(f"{H} 160000 gitlink m\n".encode(), source="x")[0].sha256 == H
