"""`qeguard install-hooks`: native git hooks for repositories without the pre-commit
framework. Installs into the hooks folder git really uses (core.hooksPath honoured),
never overwrites someone else's hook unless --force, and then keeps a backup."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.errors import ExitCode, UsageError
from qeguard.fsutil import atomic_write
from qeguard.git import GitRepo
from qeguard.integrity.layout import find_workspace
from qeguard.resources import read as read_resource

HOOKS = ("pre-commit", "pre-push")
MARKER = b"qeguard-hook:"
BACKUP_SUFFIX = ".qeguard-backup"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "install-hooks",
        help="install native pre-commit and pre-push hooks (without the pre-commit framework)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help=f"replace hooks that are not qeguard's (kept as HOOK{BACKUP_SUFFIX})",
    )
    p.set_defaults(func=run)


def hook_script(name: str) -> bytes:
    return read_resource("hooks", name)


def hooks_dir(repo: GitRepo) -> Path:
    """`git rev-parse --git-path hooks`: .git/hooks, or core.hooksPath when set."""
    raw = repo.repo.git.rev_parse("--git-path", "hooks")
    path = Path(raw)
    return path if path.is_absolute() else (repo.root / path)


def _backup_path(target: Path) -> Path:
    backup = target.with_name(target.name + BACKUP_SUFFIX)
    n = 1
    while backup.exists():  # never overwrite an earlier backup
        backup = target.with_name(f"{target.name}{BACKUP_SUFFIX}.{n}")
        n += 1
    return backup


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    root = args.repo.resolve() if args.repo else find_workspace().root
    repo = GitRepo(root)
    folder = hooks_dir(repo)
    plan: list[tuple[str, Path, bytes, str]] = []
    foreign: list[Path] = []
    for name in HOOKS:
        script = hook_script(name)
        target = folder / name
        if not target.exists() and not target.is_symlink():
            plan.append((name, target, script, "installed"))
            continue
        current = target.read_bytes() if target.is_file() else b""
        if current == script:
            plan.append((name, target, script, "already installed"))
        elif MARKER in current:
            plan.append((name, target, script, "updated"))
        else:
            foreign.append(target)
            plan.append((name, target, script, "replaced"))
    if foreign and not args.force:
        names = ", ".join(str(p) for p in foreign)
        raise UsageError(
            f"a hook that is not qeguard's is in the way: {names}",
            where=str(folder),
            hint="chain it yourself (call `qeguard verify --staged` from it), or run "
            f"`qeguard install-hooks --force` to replace it (kept as HOOK{BACKUP_SUFFIX})",
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name, target, script, action in plan:
        if action == "already installed":
            console.print(f"{name}: already installed in {folder}")
            continue
        if action == "replaced":
            backup = _backup_path(target)
            target.rename(backup)
            console.print(f"{name}: kept the previous hook as {backup.name}")
        atomic_write(target, script, mode=0o755)
        console.print(f"{name}: {action} in {folder}")
    console.info("emergency override: QEGUARD_OVERRIDE='reason' git commit ...  (see docs/git.md)")
    return ExitCode.OK
