"""Dependency sources: one module per input format, each `load(path, root=, env=)`.

`detect` finds the inputs a repository declares; `load_path` picks the parser by file name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from qeguard.deps.model import Dependency, DepsInputError, TargetEnvironment
from qeguard.errors import UsageError

Loader = Callable[..., list[Dependency]]


def relpath(path: Path, root: Path) -> str:
    """`path` relative to the repository root, POSIX style, else as given."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def read_text(path: Path, root: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"no such file: {relpath(path, root)}",
            hint="give an existing requirements or lock file",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DepsInputError(f"cannot read: {exc}", where=relpath(path, root)) from None


def kind_of(path: Path) -> str | None:
    name = path.name.lower()
    if name == "pyproject.toml":
        return "pyproject"
    if name == "uv.lock":
        return "uv.lock"
    if name == "poetry.lock":
        return "poetry.lock"
    if name == "pdm.lock":
        return "pdm.lock"
    if name == "pipfile.lock":
        return "Pipfile.lock"
    if name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml")):
        return "pylock"
    if name.endswith((".txt", ".in")) or "requirements" in name or "constraints" in name:
        return "requirements"
    return None


def loader(kind: str) -> Loader:
    from qeguard.deps.sources import (
        pdm,
        pipfile,
        poetry,
        pylock,
        pyproject,
        requirements,
        uvlock,
    )

    table: dict[str, Loader] = {
        "requirements": requirements.load,
        "pyproject": pyproject.load,
        "uv.lock": uvlock.load,
        "poetry.lock": poetry.load,
        "pdm.lock": pdm.load,
        "pylock": pylock.load,
        "Pipfile.lock": pipfile.load,
    }
    return table[kind]


def load_path(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    kind = kind_of(path)
    if kind is None and path.is_dir():
        raise UsageError(
            f"{relpath(path, root)} is a folder, not a dependency file",
            hint="name the files in it (e.g. requirements.txt, pyproject.toml), or run "
            "`qeguard deps` alone to find them in the repository root",
        )
    if kind is None:
        raise UsageError(
            f"cannot tell what kind of dependency file {relpath(path, root)} is",
            hint="name it requirements*.txt, pyproject.toml, uv.lock, poetry.lock, pdm.lock, "
            "pylock*.toml or Pipfile.lock",
        )
    return loader(kind)(path, root=root, env=env)


def detect(root: Path) -> list[Path]:
    """The dependency inputs in the repository root, in a stable order."""
    found: list[Path] = []
    patterns = (
        "requirements*.txt",
        "requirements/*.txt",
        "requirements*/*.txt",
        "constraints*.txt",
        "pyproject.toml",
        "uv.lock",
        "poetry.lock",
        "pdm.lock",
        "pylock.toml",
        "pylock.*.toml",
        "Pipfile.lock",
    )
    seen: set[Path] = set()
    for pattern in patterns:
        for p in sorted(root.glob(pattern)):
            if p.is_file() and p not in seen:
                seen.add(p)
                found.append(p)
    return found


def load_all(paths: Iterable[Path], *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    out: list[Dependency] = []
    for p in paths:
        out.extend(load_path(p, root=root, env=env))
    return out
