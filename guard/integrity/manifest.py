"""The manifest: a plain-text list of entries per tier, and the payload that binds it.

List line: `<sha256> <mode> <kind> <path>`, sorted by the path's bytes, LF line ends.
Paths with control characters, backslashes, double quotes or invalid UTF-8 are written
in git's C-style quoting, so every path round-trips and a line can never be split.
A submodule is a `gitlink` entry: `<commit id> 160000 gitlink <path>`, the commit the
superproject records (40 hex digits, or 64 in a SHA-256 repository).
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import operator
import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from qeguard.errors import EnvelopeError
from qeguard.integrity.dsse import canonical_json, loads_canonical
from qeguard.memory import cycle_collection_paused

SCHEMA = "qeguard.manifest/v1"
MODE_FILE = "100644"
MODE_EXEC = "100755"
MODE_LINK = "120000"
MODE_GITLINK = "160000"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_ID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# A path is judged as the platform verifying it sees it: on Windows a backslash or a colon
# is a separator, a drive or a stream (`a\..\..\x`, `C:x`, `x:stream`).
_WINDOWS = os.name == "nt"


class Kind(enum.Enum):
    FILE = "file"
    SYMLINK = "symlink"
    GITLINK = "gitlink"  # a submodule: the commit the superproject records


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    path: str  # POSIX, relative to the repository root; undecodable bytes as surrogates
    sha256: str  # the content's SHA-256; a symlink's target's; a gitlink's commit id
    mode: str
    kind: Kind

    @property
    def executable(self) -> bool:
        return self.mode == MODE_EXEC

    def line(self) -> str:
        return f"{self.sha256} {self.mode} {self.kind.value} {quote_path(self.path)}"


def _maybe_unsafe(path: str) -> bool:
    """True for every unsafe path (and a few safe ones); cheap enough for 100,000 paths."""
    return (
        not path
        or path[0] in "/.\\"
        or path[-1] == "/"
        or "//" in path
        or "/." in path
        or "\\" in path
        or "\x00" in path
        or path[1:2] == ":"
    )


def unsafe_path_reason(path: str, *, windows: bool = _WINDOWS) -> str | None:
    """Why an entry path must not be trusted, or None if it is a plain relative path.

    The one rule for both sides: `sign` refuses to list what this rejects and `verify`
    reports a listed one, so every path `sign` writes verifies. On POSIX a backslash is
    an ordinary character of a file name (git stores such names); on Windows it is a
    separator, so there it is rejected, and so is a colon (a drive or a data stream).
    """
    if not _maybe_unsafe(path) and not (windows and ":" in path):
        return None
    if not path:
        return "empty path"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path) or path.startswith("\\"):
        return "absolute path"
    if "\x00" in path:
        return "path with a NUL"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "path with '.', '..' or an empty component"
    # Case-insensitively, as git itself refuses them: `.GIT` is `.git` on macOS and Windows.
    if any(p.lower() == ".git" for p in parts):
        return "path inside .git"
    if windows and ("\\" in path or ":" in path):
        return "path with a backslash or colon (a separator, drive or stream on Windows)"
    return None


_ESCAPES = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}


# A path without these is written as is (checked first: signing 100,000 paths).
_NEEDS_QUOTING = re.compile(r'[\x00-\x1f"\\\x7f\ud800-\udfff]')


def quote_path(path: str) -> str:
    if _NEEDS_QUOTING.search(path) is None:
        return path
    raw = os.fsencode(path) if os.name == "posix" else path.encode("utf-8", "surrogateescape")
    try:
        raw.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    if valid and not any(b < 0x20 or b in (0x22, 0x5C, 0x7F) for b in raw):
        return path
    out = ['"']
    for b in raw:
        if b in _ESCAPES:
            out.append("\\" + _ESCAPES[b])
        elif b < 0x20 or b == 0x7F or (b >= 0x80 and not valid):
            out.append(f"\\{b:03o}")
        else:
            out.append(chr(b))
    out.append('"')
    text = "".join(out)
    # Valid UTF-8 above 0x7f was appended byte by byte as latin-1 code points: re-decode.
    if valid:
        return text.encode("latin-1").decode("utf-8")
    return text


def display_path(path: str) -> str:
    """A path as messages show it: as is, or git-quoted when it holds a line break, a
    control character or invalid UTF-8, so a file name can never forge a line of a
    report ("x\n0 findings. Verdict: PASS" is shown as `"x\\n0 findings. ..."`)."""
    return quote_path(path)


def unquote_path(text: str) -> str:
    if not text.startswith('"'):
        return text
    if len(text) < 2 or not text.endswith('"'):
        raise ValueError("unterminated quoted path")
    body = text[1:-1].encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == 0x5C:
            if i + 1 >= len(body):
                raise ValueError("dangling backslash")
            n = chr(body[i + 1])
            if n in _UNESCAPES:
                out.append(_UNESCAPES[n])
                i += 2
            elif n in "0123":
                oct_digits = body[i + 1 : i + 4].decode("ascii", "replace")
                if not re.fullmatch(r"[0-7]{3}", oct_digits):
                    raise ValueError(f"bad octal escape \\{oct_digits}")
                out.append(int(oct_digits, 8))
                i += 4
            else:
                raise ValueError(f"unknown escape \\{n}")
        elif c == 0x22:
            raise ValueError("unescaped quote inside a quoted path")
        else:
            out.append(c)
            i += 1
    return (
        os.fsdecode(bytes(out))
        if os.name == "posix"
        else bytes(out).decode("utf-8", "surrogateescape")
    )


def _sort_key(entry: Entry) -> bytes:
    return entry.path.encode("utf-8", "surrogateescape")


def path_key(path: str) -> bytes:
    """The bytes a list is sorted by: the path as the file system spells it."""
    return path.encode("utf-8", "surrogateescape")


def format_list(entries: Iterable[Entry]) -> bytes:
    lines = [e.line() for e in sorted(entries, key=_sort_key)]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape") if lines else b""


def parse_list(data: bytes, *, source: str) -> list[Entry]:
    """Parse strictly: every malformed line is an error naming the line number."""
    with cycle_collection_paused():
        return list(read_list(data, source=source))


def read_list(data: bytes, *, source: str) -> EntryList:
    """Check a whole list as strictly as `parse_list` and keep it as bytes: its entries
    are parsed only when asked for, so a 1,000,000-line list costs its bytes, not a
    million objects."""
    if data and not data.endswith(b"\n"):
        raise EnvelopeError(
            "the last line has no line end", where=source, hint="re-create it with `qeguard sign`"
        )
    if b"\r" in data:
        raise EnvelopeError(
            "CR characters found; the list uses LF line ends",
            where=source,
            hint="add `.qeguard/manifests/* -text` to .gitattributes",
        )
    count = _check_fast(data)
    if count is None:
        # Something is wrong (or unusual): the line-by-line parser says what and where.
        count = len(_parse_strict(data.decode("utf-8", "surrogateescape"), source))
    return EntryList(data, count=count)


# What may stand between a 64-digit hash and the path, cut to 13 bytes (from the space
# after the hash); the path then starts at the offset given (these heads are longer).
_HEADS = {
    b" 100644 file ": 77,
    b" 100755 file ": 77,
    b" 120000 symli": 80,
    b" 160000 gitli": 80,
}
_LONG_HEAD = b"nk "  # the rest of " 120000 symlink " and " 160000 gitlink "
# A gitlink of a SHA-1 repository: its 40-digit commit id, this, then the path.
_SHORT_GITLINK = b" 160000 gitlink "
_HEX = b"0123456789abcdef"
_KINDS_B = {k.value.encode(): k for k in Kind}
_SEGMENT = 1 << 22  # bytes checked at a time: bounds the temporary objects


def _check_fast(data: bytes) -> int | None:
    """The number of entries of a valid list, or None when any line is malformed, out of
    order or repeated (the strict parser then names it). Works on the bytes, a few MiB
    at a time, with whole-segment operations: no regular expression runs per line."""
    count = 0
    previous: bytes | None = None
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", min(pos + _SEGMENT, len(data)) - 1) + 1 or len(data)
        segment = data[pos:end]
        lines = segment.split(b"\n")
        lines.pop()  # after the last line end
        # A SHA-1 gitlink's 40-digit id shifts its line: such segments go line by line.
        found = _check_lines(lines) if _SHORT_GITLINK in segment else _check_long(lines)
        if found is None:
            return None
        keys = found
        if any(k[:1] == b'"' for k in keys):
            try:
                keys = [_quoted_key(k) if k[:1] == b'"' else k for k in keys]
            except ValueError:
                return None
        if previous is not None and not previous < keys[0]:
            return None
        if not all(map(operator.lt, keys, itertools.islice(keys, 1, None))):
            return None
        previous = keys[-1]
        count += len(keys)
        pos = end
    return count


def _check_long(lines: list[bytes]) -> list[bytes] | None:
    """The keys of lines that all hold a 64-digit hash, or None when one is malformed:
    whole-segment operations only, no regular expression per line."""
    digests = b"".join([line[:64] for line in lines])
    if len(digests) != 64 * len(lines) or digests.translate(None, _HEX):
        return None
    heads = {line[64:77] for line in lines}
    if not heads <= _HEADS.keys():
        return None
    long_head = [h for h, cut in _HEADS.items() if cut != 77]
    if heads.intersection(long_head) and any(
        line[77:80] != _LONG_HEAD for line in lines if line[64:77] in long_head
    ):
        return None
    return [line[_HEADS[line[64:77]] :] for line in lines]


def _check_lines(lines: list[bytes]) -> list[bytes] | None:
    """`_check_long` for lines among which some gitlinks hold a 40-digit commit id."""
    keys: list[bytes] = []
    for line in lines:
        if line[40:56] == _SHORT_GITLINK:
            if len(line[:40].translate(None, _HEX)) or len(line) < 56:
                return None
            keys.append(line[56:])
            continue
        found = _check_long([line])
        if found is None:
            return None
        keys += found
    return keys


def _quoted_key(quoted: bytes) -> bytes:
    return path_key(unquote_path(quoted.decode("utf-8", "surrogateescape")))


def path_start(line: bytes) -> int:
    """Where the path starts in a well-formed list line: after the space that ends the
    kind (64-digit hash), or a SHA-1 gitlink's (40-digit commit id)."""
    return line.index(b" ", 72 if line[64:65] == b" " else 48) + 1


def line_key(line: bytes) -> bytes:
    """The sort key of a well-formed list line (without its line end)."""
    quoted = line[path_start(line) :]
    return _quoted_key(quoted) if quoted[:1] == b'"' else quoted


def entry_of_line(line: bytes) -> Entry:
    """The entry of a well-formed list line (without its line end)."""
    digest, mode, kind, quoted = line.split(b" ", 3)
    path = quoted.decode("utf-8", "surrogateescape")
    if path[:1] == '"':
        path = unquote_path(path)
    return Entry(path=path, sha256=digest.decode(), mode=mode.decode(), kind=_KINDS_B[kind])


class EntryList(Collection[Entry]):
    """A checked list held as its bytes, sorted by path: iterating parses each line as it
    goes, `get` finds one path by bisection, and `entries(start, end)` reads the lines
    of a byte range (offsets are line starts)."""

    __slots__ = ("_count", "data")

    def __init__(self, data: bytes, *, count: int):
        self.data = data
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Entry]:
        for _, entry in self.entries():
            yield entry

    def __contains__(self, item: object) -> bool:
        return isinstance(item, Entry) and self.get(item.path) == item

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, Entry]]:
        """(offset, entry) for every line that starts in [start, end)."""
        data = self.data
        stop = len(data) if end is None else end
        pos = start
        while pos < stop:
            nl = data.index(b"\n", pos)
            yield pos, entry_of_line(data[pos:nl])
            pos = nl + 1

    def find(self, key: bytes, lo: int = 0) -> int:
        """The offset of the first line at or after `lo` whose key is >= `key` (the end
        of the data when there is none). `lo` must be a line start."""
        data = self.data
        hi = len(data)
        while lo < hi:
            begin = data.rfind(b"\n", lo, (lo + hi) // 2) + 1 or lo
            nl = data.index(b"\n", begin)
            if line_key(data[begin:nl]) < key:
                lo = nl + 1
            else:
                hi = begin
        return lo

    def get(self, path: str) -> Entry | None:
        data = self.data
        key = path_key(path)
        at = self.find(key)
        if at >= len(data):
            return None
        line = data[at : data.index(b"\n", at)]
        return entry_of_line(line) if line_key(line) == key else None


def _parse_strict(text: str, source: str) -> list[Entry]:
    entries: list[Entry] = []
    previous: bytes | None = None
    # Split on LF only: str.splitlines() also breaks at U+0085, U+2028 and U+2029, which
    # are valid unquoted characters in a path.
    for n, line in enumerate(text.split("\n")[:-1], start=1):
        where = f"{source}:{n}"
        parts = line.split(" ", 3)
        if len(parts) != 4:
            raise EnvelopeError("expected `<sha256> <mode> <kind> <path>`", where=where)
        digest, mode, kind_text, quoted = parts
        kind = _check_fields(digest, mode, kind_text, where)
        try:
            path = unquote_path(quoted)
        except ValueError as exc:
            raise EnvelopeError(f"bad path quoting: {exc}", where=where) from None
        entry = Entry(path=path, sha256=digest, mode=mode, kind=kind)
        key = _sort_key(entry)
        if previous is not None and key <= previous:
            raise EnvelopeError("entries are not sorted or a path repeats", where=where)
        previous = key
        entries.append(entry)
    return entries


# The mode each kind may have (a file's says whether it is executable).
_MODES = {
    Kind.FILE: (MODE_FILE, MODE_EXEC),
    Kind.SYMLINK: (MODE_LINK,),
    Kind.GITLINK: (MODE_GITLINK,),
}


def _check_fields(digest: str, mode: str, kind_text: str, where: str) -> Kind:
    """The kind of a list line whose hash, mode and kind fields are valid together."""
    if not (_HEX64.match(digest) or _COMMIT_ID.match(digest)):
        raise EnvelopeError("the hash is not 64 lower-case hex digits", where=where)
    if mode not in (MODE_FILE, MODE_EXEC, MODE_LINK, MODE_GITLINK):
        raise EnvelopeError(f"unknown mode {mode!r}", where=where)
    try:
        kind = Kind(kind_text)
    except ValueError:
        raise EnvelopeError(f"unknown kind {kind_text!r}", where=where) from None
    if mode not in _MODES[kind]:
        raise EnvelopeError("mode and kind disagree", where=where)
    if kind is not Kind.GITLINK and not _HEX64.match(digest):
        raise EnvelopeError("the hash is not 64 lower-case hex digits", where=where)
    return kind


@dataclass(frozen=True, kw_only=True, slots=True)
class Payload:
    tier: str
    sequence: int
    created: str
    expires: str
    policy_sha256: str
    list_sha256: str
    count: int
    git_commit: str | None = None
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": self.schema,
            "tier": self.tier,
            "sequence": self.sequence,
            "created": self.created,
            "expires": self.expires,
            "policy_sha256": self.policy_sha256,
            "list_sha256": self.list_sha256,
            "count": self.count,
        }
        if self.git_commit:
            d["git_commit"] = self.git_commit
        return d

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    def binds_same(self, other: Payload) -> bool:
        """Same content, whatever the dates: co-signing adds to a payload that binds this."""
        return (self.tier, self.policy_sha256, self.list_sha256, self.count) == (
            other.tier,
            other.policy_sha256,
            other.list_sha256,
            other.count,
        )

    @property
    def expires_at(self) -> datetime:
        return parse_time(self.expires)

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str) -> Payload:
        """Parse the signed payload: canonical JSON byte for byte (so it has one reading),
        exactly the v1 fields, each of its type."""
        return cls.from_dict(loads_canonical(data, where=source), source=source)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, source: str) -> Payload:
        def need(key: str, typ: type) -> Any:
            value = doc.get(key)
            if not isinstance(value, typ) or isinstance(value, bool):
                raise EnvelopeError(
                    f"payload field `{key}` must be {typ.__name__}",
                    where=f"{source}: payload.{key}",
                )
            return value

        if doc.get("schema") != SCHEMA:
            raise EnvelopeError(
                f"unknown payload schema {doc.get('schema')!r}",
                where=f"{source}: payload.schema",
                hint=f"expected {SCHEMA!r}; upgrade qeguard or re-sign",
            )
        unknown = set(doc) - _PAYLOAD_FIELDS
        if unknown:
            raise EnvelopeError(
                f"unknown payload field(s) {', '.join(sorted(unknown))}",
                where=f"{source}: payload",
                hint=f"a {SCHEMA} payload has only: {', '.join(sorted(_PAYLOAD_FIELDS))}",
            )
        git_commit = doc.get("git_commit")
        if git_commit is not None and not isinstance(git_commit, str):
            raise EnvelopeError(
                "payload field `git_commit` must be str", where=f"{source}: payload.git_commit"
            )
        payload = cls(
            tier=need("tier", str),
            sequence=need("sequence", int),
            created=need("created", str),
            expires=need("expires", str),
            policy_sha256=need("policy_sha256", str),
            list_sha256=need("list_sha256", str),
            count=need("count", int),
            git_commit=git_commit,
        )
        for key in ("created", "expires"):
            try:
                parse_time(getattr(payload, key))
            except ValueError:
                raise EnvelopeError(
                    "not an RFC 3339 time", where=f"{source}: payload.{key}"
                ) from None
        if payload.sequence < 1 or payload.count < 0:
            raise EnvelopeError("sequence must be >= 1 and count >= 0", where=f"{source}: payload")
        for key in ("policy_sha256", "list_sha256"):
            if not _HEX64.match(getattr(payload, key)):
                raise EnvelopeError(
                    "must be 64 lower-case hex digits", where=f"{source}: payload.{key}"
                )
        return payload


_PAYLOAD_FIELDS = frozenset(
    {
        "schema",
        "tier",
        "sequence",
        "created",
        "expires",
        "policy_sha256",
        "list_sha256",
        "count",
        "git_commit",
    }
)


def new_payload(
    *,
    tier: str,
    sequence: int,
    list_bytes: bytes,
    count: int,
    policy_sha256: str,
    now: datetime,
    expires_days: int,
    git_commit: str | None = None,
) -> Payload:
    return Payload(
        tier=tier,
        sequence=sequence,
        created=format_time(now),
        expires=format_time(now + timedelta(days=expires_days)),
        policy_sha256=policy_sha256,
        list_sha256=hashlib.sha256(list_bytes).hexdigest(),
        count=count,
        git_commit=git_commit,
    )


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("no time zone")
    return when
