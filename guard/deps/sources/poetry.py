"""poetry.lock: every locked package; hashes from either lock format (1.x or 2.x)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qeguard.deps.model import Dependency, TargetEnvironment
from qeguard.deps.sources._toml import expect, load_toml, lock_entries

# Local sources have no released version to look up. A `git` or `url` source is scanned
# by the version poetry locked, as in every other lock format.
_LOCAL = ("directory", "file")


def load(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    data, text, source = load_toml(path, root)
    old_files = data.get("metadata", {}).get("files", {})
    if not isinstance(old_files, dict):
        old_files = {}
    out: list[Dependency] = []
    for entry in lock_entries(data, text, source, "package"):
        pkg, name, line = entry.table, entry.name, entry.line
        version = expect(
            pkg.get("version"), str, what=f"package[{entry.index}].version", where=entry.where
        )
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
