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
    MODE_LINK,
    SCHEMA,
    Entry,
    Kind,
    Payload,
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
        ("a\\..\\b", "backslash"),
        ("a\x00b", "NUL"),
    ],
)
def test_unsafe_paths(path: str, reason: str) -> None:
    got = unsafe_path_reason(path)
    assert got is not None and reason in got


@pytest.mark.parametrize("path", ["a", "src/pkg/__init__.py", ".github/x.yml", "a b/c..d"])
def test_safe_paths(path: str) -> None:
    assert unsafe_path_reason(path) is None


NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _payload(**over: object) -> Payload:
    p = new_payload(
        tier="core",
        sequence=3,
        list_bytes=b"x\n",
        count=1,
        policy_sha256="p" * 64,
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
    ],
)
def test_payload_is_strict(change: dict[str, object], needle: str) -> None:
    doc = {**_payload().to_dict(), **change}
    with pytest.raises(EnvelopeError) as info:
        Payload.from_dict(doc, source="core.dsse.json")
    assert needle in info.value.diagnostics()


def test_payload_not_json() -> None:
    with pytest.raises(EnvelopeError, match="not JSON"):
        Payload.from_bytes(b"\x00", source="e")
    with pytest.raises(EnvelopeError, match="JSON object"):
        Payload.from_bytes(b"[1]", source="e")
