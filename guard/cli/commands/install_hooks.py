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
from qeguard.hints import Hints
from qeguard.integrity.layout import POLICY_PATH, find_workspace
from qeguard.resources import read as read_resource

# commit-msg records an emergency override in the commit (a `Qeguard-Override:` trailer).
HOOKS = ("pre-commit", "commit-msg", "pre-push")
MARKER = b"qeguard-hook:"
BACKUP_SUFFIX = ".qeguard-backup"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "install-hooks",
        help="install native pre-commit, commit-msg and pre-push hooks (without the "
        "pre-commit framework)",
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
            console.result(f"{name}: already installed in {folder}")
            continue
        if action == "replaced":
            backup = _backup_path(target)
            target.rename(backup)
            console.result(f"{name}: kept the previous hook as {backup.name}")
        atomic_write(target, script, mode=0o755)
        console.result(f"{name}: {action} in {folder}")
    problem = _not_ready(repo)
    if problem is not None:
        console.warn(problem)
    console.info("emergency override: QEGUARD_OVERRIDE='reason' git commit ...  (see docs/git.md)")
    return ExitCode.OK


def _not_ready(repo: GitRepo) -> str | None:
    """Why the next commit would fail before the hooks check anything, or None."""
    hints = Hints.here(repo.root)
    if not (repo.root / POLICY_PATH).is_file():
        return (
            f"no {POLICY_PATH} yet: every commit fails with 'no policy found' until you run "
            f"`{hints.qeguard('init', '--preset', 'default')}` and stage .qeguard/"
        )
    head = repo.head()
    if (head is None or repo.read_at(head, POLICY_PATH) is None) and not repo.index_entries(
        [POLICY_PATH]
    ):
        return (
            f"{POLICY_PATH} exists but is not staged: every commit fails "
            f"until you run `{hints.commit_config()}`"
        )
    return None
