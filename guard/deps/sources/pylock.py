"""pylock.toml (PEP 751): packages with markers, versions and per-file hashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qeguard.deps.model import Dependency, DepsInputError, TargetEnvironment
from qeguard.deps.sources._toml import expect, load_toml, lock_entries


def load(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    data, text, source = load_toml(path, root)
    lock_version = data.get("lock-version")
    if not isinstance(lock_version, str) or not lock_version.startswith("1."):
        raise DepsInputError(
            f"unsupported lock-version {lock_version!r}",
            where=f"{source}: lock-version",
            hint="PEP 751 lock files declare lock-version = '1.0'",
        )
    out: list[Dependency] = []
    for entry in lock_entries(data, text, source, "packages"):
        pkg, name, line, where, i = entry.table, entry.name, entry.line, entry.where, entry.index
        marker = pkg.get("marker")
        if marker is not None:
            expect(marker, str, what=f"packages[{i}].marker", where=where)
            if not env.evaluate(marker, where=where):
                continue
        version = pkg.get("version")
        hashes = _hashes(pkg)
        if not isinstance(version, str):
            local = next((k for k in ("vcs", "directory", "archive") if k in pkg), "source")
            out.append(
                Dependency(
                    name=name,
                    source=source,
                    line=line,
                    kind="pylock",
                    markers=marker,
                    hashes=hashes,
                    unscannable=f"{local} without a version",
                )
            )
            continue
        out.append(
            Dependency(
                name=name,
                source=source,
                line=line,
                version=version,
                specifier=f"=={version}",
                markers=marker,
                hashes=hashes,
                kind="pylock",
            )
        )
    return out


def _hashes(pkg: dict[str, Any]) -> tuple[str, ...]:
    files: list[Any] = list(pkg.get("wheels") or [])
    for key in ("sdist", "archive"):
        if isinstance(pkg.get(key), dict):
            files.append(pkg[key])
    out: list[str] = []
    for f in files:
        if isinstance(f, dict) and isinstance(f.get("hashes"), dict):
            out.extend(f"{alg}:{digest}" for alg, digest in sorted(f["hashes"].items()))
    return tuple(out)
