"""TOML loading with line numbers for the keys the sources need.

`tomllib` does not report positions, so lines are found by searching the text for the
table header or string that produced a value. The search is deliberately simple: it only
has to point a reader at the right line, never to decide anything.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qeguard.deps.model import DepsInputError
from qeguard.deps.sources import read_text, relpath

_ERR_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_toml(path: Path, root: Path) -> tuple[dict[str, Any], str, str]:
    """(table, text, source) or a DepsInputError naming the file and line."""
    source = relpath(path, root)
    text = read_text(path, root)
    try:
        return tomllib.loads(text), text, source
    except tomllib.TOMLDecodeError as exc:
        m = _ERR_LINE.search(str(exc))
        where = f"{source}:{m.group(1)}" if m else source
        raise DepsInputError(f"malformed TOML: {exc}", where=where) from None


class LineFinder:
    """Finds the line of the n-th occurrence of a needle, scanning forward."""

    def __init__(self, text: str):
        self._lines = text.splitlines()

    def find(self, *needles: str, start: int = 1) -> int | None:
        for i in range(max(start, 1) - 1, len(self._lines)):
            if all(n in self._lines[i] for n in needles):
                return i + 1
        return None

    def headers(self, header: str) -> list[int]:
        """Lines of every `[[header]]` array-of-tables entry, in order."""
        want = f"[[{header}]]"
        return [i + 1 for i, line in enumerate(self._lines) if line.strip() == want]


@dataclass(frozen=True, kw_only=True, slots=True)
class LockEntry:
    """One `[[key]]` table of a lock file, checked to be a table with a string `name`."""

    index: int
    table: dict[str, Any]
    name: str
    line: int | None
    where: str  # `file:line`, or `file: key[i]` when the header was not found


def lock_entries(data: dict[str, Any], text: str, source: str, key: str) -> Iterator[LockEntry]:
    """The `[[key]]` array of a lock file (uv.lock, poetry.lock, pylock.toml), with lines."""
    tables = expect(data.get(key, []), list, what=key, where=source)
    headers = LineFinder(text).headers(key)
    for i, table in enumerate(tables):
        line = headers[i] if i < len(headers) else None
        where = f"{source}:{line}" if line else f"{source}: {key}[{i}]"
        expect(table, dict, what=f"{key}[{i}]", where=where)
        name = expect(table.get("name"), str, what=f"{key}[{i}].name", where=where)
        yield LockEntry(index=i, table=table, name=name, line=line, where=where)


def expect(value: Any, typ: type | tuple[type, ...], *, what: str, where: str) -> Any:
    if not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise DepsInputError(f"{what} must be a {names}, not {type(value).__name__}", where=where)
    return value
