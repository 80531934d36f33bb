"""pyproject.toml: PEP 621 dependencies and optional dependencies, PEP 735 groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qeguard.deps.model import Dependency, DepsInputError, TargetEnvironment
from qeguard.deps.sources._toml import LineFinder, expect, load_toml
from qeguard.deps.sources.requirements import parse_line


def load(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    data, text, source = load_toml(path, root)
    lines = LineFinder(text)
    out: list[Dependency] = []
    project = expect(data.get("project", {}), dict, what="[project]", where=source)
    deps = expect(project.get("dependencies", []), list, what="project.dependencies", where=source)
    _add(out, deps, group=None, field="dependencies", source=source, lines=lines, env=env)
    optional = expect(
        project.get("optional-dependencies", {}),
        dict,
        what="project.optional-dependencies",
        where=source,
    )
    for extra, items in optional.items():
        expect(items, list, what=f"project.optional-dependencies.{extra}", where=source)
        _add(out, items, group=f"extra:{extra}", field=extra, source=source, lines=lines, env=env)
    groups = expect(
        data.get("dependency-groups", {}), dict, what="[dependency-groups]", where=source
    )
    _check_groups(groups, source)
    for name in groups:
        _add(
            out,
            _expand_group(groups, name),
            group=f"group:{name}",
            field=name,
            source=source,
            lines=lines,
            env=env,
        )
    return out


def _check_groups(groups: dict[str, Any], source: str) -> None:
    """PEP 735 as packaging reads it: names normalized and unique, includes that exist,
    no cycles, every entry a requirement or an include."""
    from packaging.dependency_groups import DependencyGroupResolver

    try:
        resolver = DependencyGroupResolver(groups)
        for name in groups:
            resolver.resolve(name)
    except ExceptionGroup as exc:
        problems = "; ".join(" ".join(str(e).split()) for e in exc.exceptions)
        raise DepsInputError(
            f"invalid [dependency-groups]: {problems}",
            where=f"{source}: dependency-groups",
            hint='use "name>=1.0" strings or {include-group = "other"} (PEP 735)',
        ) from None
    except (ValueError, LookupError, TypeError) as exc:
        raise DepsInputError(
            f"invalid [dependency-groups]: {exc}", where=f"{source}: dependency-groups"
        ) from None


def _expand_group(groups: dict[str, Any], name: str) -> list[str]:
    """The group's requirement strings as written, includes expanded (already checked by
    `_check_groups`, so no cycles and no missing groups)."""
    from packaging.utils import canonicalize_name

    by_name = {canonicalize_name(k): v for k, v in groups.items()}
    out: list[str] = []
    for item in by_name[canonicalize_name(name)]:
        if isinstance(item, str):
            out.append(item)
        else:
            out.extend(_expand_group(groups, str(item["include-group"])))
    return out


def _add(
    out: list[Dependency],
    items: list[Any],
    *,
    group: str | None,
    field: str,
    source: str,
    lines: LineFinder,
    env: TargetEnvironment,
) -> None:
    anchor = lines.find(field) or 1
    for item in items:
        if not isinstance(item, str):
            raise DepsInputError(
                f"dependency {item!r} must be a string", where=f"{source}:{anchor}"
            )
        line = lines.find(f'"{item}"', start=anchor) or lines.find(f"'{item}'", start=anchor)
        dep = parse_line(item, source=source, line_no=line or anchor, env=env, group=group)
        if dep is not None:
            out.append(_as_pyproject(dep))


def _as_pyproject(dep: Dependency) -> Dependency:
    from dataclasses import replace

    return replace(dep, kind="pyproject")
