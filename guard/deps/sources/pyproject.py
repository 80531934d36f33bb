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
    for name in groups:
        _add(
            out,
            _expand_group(groups, name, source, ()),
            group=f"group:{name}",
            field=name,
            source=source,
            lines=lines,
            env=env,
        )
    return out


def _expand_group(
    groups: dict[str, Any], name: str, source: str, stack: tuple[str, ...]
) -> list[str]:
    """PEP 735: a group may `{include-group = "other"}`; cycles are an error."""
    if name in stack:
        raise DepsInputError(
            f"dependency group {name!r} includes itself",
            where=f"{source}: dependency-groups.{name}",
        )
    items = groups.get(name)
    if items is None:
        raise DepsInputError(
            f"included dependency group {name!r} does not exist",
            where=f"{source}: dependency-groups",
        )
    expect(items, list, what=f"dependency-groups.{name}", where=source)
    out: list[str] = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"include-group"}:
            out.extend(_expand_group(groups, str(item["include-group"]), source, (*stack, name)))
        elif isinstance(item, str):
            out.append(item)
        else:
            raise DepsInputError(
                f"invalid entry {item!r}",
                where=f"{source}: dependency-groups.{name}",
                hint='use "name>=1.0" strings or {include-group = "other"}',
            )
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
