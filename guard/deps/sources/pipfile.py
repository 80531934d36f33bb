"""Pipfile.lock: the `default` and `develop` sections, with hashes and markers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qeguard.deps.model import Dependency, DepsInputError, TargetEnvironment, exact_version
from qeguard.deps.sources import read_text, relpath
from qeguard.deps.sources._toml import LineFinder, expect


def load(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    source = relpath(path, root)
    text = read_text(path, root)
    if not text.strip():
        return []  # pipenv treats an empty lock as no lock: nothing is locked yet
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DepsInputError(f"malformed JSON: {exc.msg}", where=f"{source}:{exc.lineno}") from None
    expect(data, dict, what="Pipfile.lock", where=source)
    lines = LineFinder(text)
    out: list[Dependency] = []
    for section in ("default", "develop"):
        entries = expect(data.get(section, {}), dict, what=section, where=source)
        anchor = lines.find(f'"{section}"') or 1
        for name, entry in entries.items():
            line = lines.find(f'"{name}"', start=anchor)
            where = f"{source}:{line}" if line else f"{source}: {section}.{name}"
            expect(entry, dict, what=f"{section}.{name}", where=where)
            marker = entry.get("markers")
            if marker is not None and not env.evaluate(str(marker), where=where):
                continue
            hashes = tuple(h for h in entry.get("hashes", []) if isinstance(h, str))
            group = None if section == "default" else "develop"
            spec = entry.get("version")
            local = next((k for k in ("editable", "path", "file") if entry.get(k)), None)
            if local is None and entry.get("git") and not isinstance(spec, str):
                local = "git"  # a git source is scanned by its locked version, if any
            if local is not None:
                out.append(_unscannable(name, source, line, group, local, entry))
                continue
            if not isinstance(spec, str):
                raise DepsInputError(f"{section}.{name} has no version", where=where)
            version = exact_version(spec)
            if version is None:
                raise DepsInputError(
                    f"{section}.{name}: expected an exact ==version, got {spec!r}", where=where
                )
            out.append(
                Dependency(
                    name=name,
                    source=source,
                    line=line,
                    version=version,
                    specifier=spec,
                    hashes=hashes,
                    group=group,
                    markers=str(marker) if marker else None,
                    kind="Pipfile.lock",
                )
            )
    return out


def _unscannable(
    name: str, source: str, line: int | None, group: str | None, kind: str, entry: dict[str, Any]
) -> Dependency:
    target = entry.get("path") or entry.get("git") or entry.get("file") or ""
    return Dependency(
        name=name,
        source=source,
        line=line,
        group=group,
        kind="Pipfile.lock",
        unscannable=f"{kind} {target!r}".strip(),
    )
