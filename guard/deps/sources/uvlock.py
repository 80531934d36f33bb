"""uv.lock: every locked package, with its hashes and uv's resolution markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qeguard.deps.model import Dependency, TargetEnvironment
from qeguard.deps.sources._toml import expect, load_toml, lock_entries

_LOCAL = ("editable", "virtual", "directory", "path")


def load(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    data, text, source = load_toml(path, root)
    out: list[Dependency] = []
    for entry in lock_entries(data, text, source, "package"):
        pkg, name, line, where, i = entry.table, entry.name, entry.line, entry.where, entry.index
        pkg_source: dict[str, Any] = expect(
            pkg.get("source", {}), dict, what=f"package[{i}].source", where=where
        )
        markers = pkg.get("resolution-markers") or []
        expect(markers, list, what=f"package[{i}].resolution-markers", where=where)
        # A package forked per environment applies where any of its markers hold.
        if markers and not any(env.evaluate(m, where=where) for m in markers):
            continue
        local = next((k for k in _LOCAL if k in pkg_source), None)
        if local is not None and pkg_source.get(local) == ".":
            continue  # the project itself, not a dependency
        version = pkg.get("version")
        if local is not None or not isinstance(version, str):
            why = f"{local} source {pkg_source[local]!r}" if local else "no version in the lock"
            out.append(
                Dependency(name=name, source=source, line=line, kind="uv.lock", unscannable=why)
            )
            continue
        out.append(
            Dependency(
                name=name,
                source=source,
                line=line,
                version=version,
                specifier=f"=={version}",
                hashes=_hashes(pkg),
                markers=" or ".join(f"({m})" for m in markers) or None,
                kind="uv.lock",
            )
        )
    return out


def _hashes(pkg: dict[str, Any]) -> tuple[str, ...]:
    files: list[Any] = []
    if isinstance(pkg.get("sdist"), dict):
        files.append(pkg["sdist"])
    if isinstance(pkg.get("wheels"), list):
        files.extend(pkg["wheels"])
    return tuple(f["hash"] for f in files if isinstance(f, dict) and isinstance(f.get("hash"), str))
