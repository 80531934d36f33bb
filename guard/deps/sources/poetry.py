"""poetry.lock: every locked package; hashes from either lock format (1.x or 2.x)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guard.deps.interface import Dependency, TargetEnvironment
from guard.deps.sources._toml import LineFinder, expect, load_toml

_LOCAL = ("directory", "file", "git", "url")


def load(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    data, text, source = load_toml(path, root)
    packages = expect(data.get("package", []), list, what="package", where=source)
    headers = LineFinder(text).headers("package")
    old_files = data.get("metadata", {}).get("files", {})
    if not isinstance(old_files, dict):
        old_files = {}
    out: list[Dependency] = []
    for i, pkg in enumerate(packages):
        line = headers[i] if i < len(headers) else None
        where = f"{source}:{line}" if line else f"{source}: package[{i}]"
        expect(pkg, dict, what=f"package[{i}]", where=where)
        name = expect(pkg.get("name"), str, what=f"package[{i}].name", where=where)
        version = expect(pkg.get("version"), str, what=f"package[{i}].version", where=where)
        group = pkg.get("category") if isinstance(pkg.get("category"), str) else None
        pkg_source = pkg.get("source") or {}
        kind = pkg_source.get("type") if isinstance(pkg_source, dict) else None
        if kind in _LOCAL:
            out.append(
                Dependency(
                    name=name,
                    source=source,
                    line=line,
                    kind="poetry.lock",
                    group=group,
                    unscannable=f"{kind} source {pkg_source.get('url')!r}",
                )
            )
            continue
        files: list[Any] = pkg.get("files") or old_files.get(name) or []
        hashes = tuple(
            f["hash"] for f in files if isinstance(f, dict) and isinstance(f.get("hash"), str)
        )
        out.append(
            Dependency(
                name=name,
                source=source,
                line=line,
                version=version,
                specifier=f"=={version}",
                hashes=hashes,
                group=group,
                kind="poetry.lock",
            )
        )
    return out
