"""pdm.lock: every locked package of every group, with pdm's markers and file hashes.

Reads lock_version 4.x: hashes in each package's `files` (4.2 and later) or in the older
`[metadata.files]` table keyed by "name version". A package pdm writes once more for an
extra (`extras = [...]`, same name and version) is the same code and is read once.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from qeguard.deps.model import Dependency, TargetEnvironment
from qeguard.deps.sources._toml import expect, load_toml, lock_entries


def load(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    data, text, source = load_toml(path, root)
    meta = expect(data.get("metadata", {}), dict, what="[metadata]", where=source)
    old_files = meta.get("files") if isinstance(meta.get("files"), dict) else {}
    entries = list(lock_entries(data, text, source, "package"))
    plain = {(e.name.lower(), e.table.get("version")) for e in entries if not e.table.get("extras")}
    out: list[Dependency] = []
    for entry in entries:
        pkg, name, line, where = entry.table, entry.name, entry.line, entry.where
        version = pkg.get("version")
        if pkg.get("extras") and (name.lower(), version) in plain:
            continue
        marker = pkg.get("marker")
        if marker is not None:
            expect(marker, str, what=f"package[{entry.index}].marker", where=where)
            if not env.evaluate(marker, where=where):
                continue
        groups = pkg.get("groups") if isinstance(pkg.get("groups"), list) else []
        group = None if not groups or "default" in groups else str(groups[0])
        base = Dependency(name=name, source=source, line=line, group=group, kind="pdm.lock")
        if isinstance(pkg.get("path"), str):
            how = "editable folder" if pkg.get("editable") else "local path"
            out.append(replace(base, unscannable=f"{how} {pkg['path']!r}"))
            continue
        if not isinstance(version, str):
            what = "git source" if pkg.get("git") else "package"
            out.append(replace(base, unscannable=f"{what} without a version"))
            continue
        # A git or URL source is scanned by the version pdm locked, as in every format.
        files: list[Any] = pkg.get("files") or old_files.get(f"{name} {version}") or []
        hashes = tuple(
            f["hash"] for f in files if isinstance(f, dict) and isinstance(f.get("hash"), str)
        )
        out.append(
            replace(base, version=version, specifier=f"=={version}", hashes=hashes, markers=marker)
        )
    return out
