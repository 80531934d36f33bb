"""The installed environment: every distribution importlib.metadata can see."""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Iterable

from qeguard.deps.model import Dependency


def license_of(meta: md.PackageMetadata) -> str | None:
    """The license as the metadata states it: the SPDX expression, else the free-text
    field when short, else the OSI classifiers."""
    expression = _first(meta, "License-Expression")
    if expression:
        return expression.strip()
    text = _first(meta, "License")
    if text and len(text) <= 80 and "\n" not in text.strip():
        return text.strip()
    classifiers = [
        c.split(" :: ")[-1]
        for c in (meta.get_all("Classifier") or [])
        if c.startswith("License ::")
    ]
    return " OR ".join(classifiers) if classifiers else None


def _first(meta: md.PackageMetadata, key: str) -> str | None:
    values = meta.get_all(key) or []
    return str(values[0]) if values else None


def installed(paths: Iterable[str] | None = None) -> dict[str, tuple[str, str | None]]:
    """canonical name -> (version, license) for the distributions on `paths` (sys.path)."""
    from packaging.utils import canonicalize_name

    out: dict[str, tuple[str, str | None]] = {}
    dists = md.distributions(path=list(paths)) if paths is not None else md.distributions()
    for dist in dists:
        name = dist.metadata["Name"]
        if not name:
            continue
        key = canonicalize_name(str(name))
        if key not in out:  # the first on sys.path wins, as for import
            out[key] = (dist.version, license_of(dist.metadata))
    return out


def load_environment(paths: Iterable[str] | None = None) -> list[Dependency]:
    out: list[Dependency] = []
    for dist in md.distributions(path=list(paths)) if paths is not None else md.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        out.append(
            Dependency(
                name=str(name),
                source="(installed environment)",
                version=dist.version,
                specifier=f"=={dist.version}",
                kind="environment",
                license=license_of(dist.metadata),
            )
        )
    seen: set[str] = set()
    unique = []
    for d in sorted(out, key=lambda d: d.canonical_name):
        if d.canonical_name not in seen:
            seen.add(d.canonical_name)
            unique.append(d)
    return unique
