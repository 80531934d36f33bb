"""The installed environment: every distribution importlib.metadata can see."""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Iterable

from qeguard.deps.model import Dependency


def license_of(meta: md.PackageMetadata) -> str | None:
    """The license as an SPDX expression where the metadata allows: `License-Expression`,
    else the license classifiers mapped to SPDX ids, else the free-text `License` field
    (when short), else the classifiers' own names."""
    from qeguard.deps.licenses import classifier_names, from_classifiers, spdx

    expression = _first(meta, "License-Expression")
    if expression and expression.strip():
        return spdx(expression) or expression.strip()
    classifiers = [str(c) for c in meta.get_all("Classifier") or []]
    mapped = from_classifiers(classifiers)
    if mapped:
        return mapped
    text = _first(meta, "License")
    if text and text.strip() and len(text) <= 80 and "\n" not in text.strip():
        return spdx(text) or text.strip()
    names = classifier_names(classifiers)
    return names[0] if len(names) == 1 else (" / ".join(names) or None)


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
