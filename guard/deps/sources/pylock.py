"""pylock.toml (PEP 751), validated and read by packaging's `pylock` module.

packaging rejects what PEP 751 rejects (no `packages`, a version that is not PEP 440, an
unsupported lock-version, ...) with the field path, which becomes the error's `where`.
Package markers are evaluated in the lock-file context, where `extras` and
`dependency_groups` are sets: a package counts when its marker holds either for a default
install (no extras, the lock's `default-groups`) or with every declared extra and group,
so nothing an install could select is left unscanned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from qeguard.deps.model import Dependency, DepsInputError, TargetEnvironment
from qeguard.deps.sources._toml import LineFinder, load_toml

if TYPE_CHECKING:
    from packaging.pylock import Package

_INDEX = re.compile(r"^packages\[(\d+)\]")


def load(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
    from packaging.pylock import Pylock, PylockUnsupportedVersionError, PylockValidationError

    data, text, source = load_toml(path, root)
    headers = LineFinder(text).headers("packages")

    def where_of(context: str | None) -> str:
        m = _INDEX.match(context or "")
        if m and int(m.group(1)) < len(headers):
            return f"{source}:{headers[int(m.group(1))]}"
        return f"{source}: {context}" if context else source

    try:
        lock = Pylock.from_dict(data)
    except PylockUnsupportedVersionError as exc:
        raise DepsInputError(
            f"unsupported lock-version: {exc}",
            where=f"{source}: lock-version",
            hint="PEP 751 lock files declare lock-version = '1.0'",
        ) from None
    except PylockValidationError as exc:
        raise DepsInputError(
            f"invalid pylock.toml: {exc.message}"
            + (f" (field {exc.context})" if exc.context else ""),
            where=where_of(exc.context),
            hint="see PEP 751 (https://packaging.python.org/en/latest/specifications/pylock-toml/)",
        ) from None
    base = dict(env.values)
    groups = frozenset(lock.default_groups or ())
    default_env: dict[str, str | frozenset[str]] = {
        **base,
        "extras": frozenset(),
        "dependency_groups": groups,
    }
    full_env: dict[str, str | frozenset[str]] = {
        **base,
        "extras": frozenset(lock.extras or ()),
        "dependency_groups": groups | frozenset(lock.dependency_groups or ()),
    }
    out: list[Dependency] = []
    for i, pkg in enumerate(lock.packages):
        line = headers[i] if i < len(headers) else None
        where = f"{source}:{line}" if line else f"{source}: packages[{i}]"
        group = None
        if pkg.marker is not None:
            try:
                by_default = pkg.marker.evaluate(default_env, context="lock_file")
                selectable = by_default or pkg.marker.evaluate(full_env, context="lock_file")
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
                raise DepsInputError(
                    f"cannot evaluate the marker {str(pkg.marker)!r}: {exc}", where=where
                ) from None
            if not selectable:
                continue
            if not by_default:
                group = "extras/groups"
        out.append(_dependency(pkg, source=source, line=line, group=group))
    return out


def _dependency(pkg: Package, *, source: str, line: int | None, group: str | None) -> Dependency:
    hashes: list[str] = []
    for f in [*(pkg.wheels or ()), pkg.sdist, pkg.archive]:
        if f is not None and isinstance(f.hashes, Mapping):
            hashes.extend(f"{alg}:{digest}" for alg, digest in sorted(f.hashes.items()))
    marker = str(pkg.marker) if pkg.marker is not None else None
    base = Dependency(
        name=str(pkg.name),
        source=source,
        line=line,
        kind="pylock",
        markers=marker,
        hashes=tuple(hashes),
        group=group,
    )
    version = str(pkg.version) if pkg.version is not None else None
    local = None
    if pkg.directory is not None:
        local = f"local folder {pkg.directory.path!r}"
    elif pkg.archive is not None and pkg.archive.url is None:
        local = f"local archive {pkg.archive.path!r}"
    elif version is None:
        what = "vcs" if pkg.vcs is not None else "archive" if pkg.archive is not None else "source"
        local = f"{what} without a version"
    if local is not None:
        return replace(base, unscannable=local)
    # A VCS or remote archive with a version is scanned by that version, as in every
    # other lock format.
    return replace(base, version=version, specifier=f"=={version}")
