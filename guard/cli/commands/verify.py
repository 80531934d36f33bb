"""`qeguard verify`: prove the tree matches what enough trusted people signed.

Strict by default: a tier short of its threshold blocks, in every mode. Only `--hook`
(what the installed hooks and the pre-commit framework run) relaxes that on a developer's
machine: a shortfall with at least one valid signature warns, and an override passes.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.cli.output import add_output_arguments, emit, output_pairs, render_options
from qeguard.errors import ExitCode, UsageError
from qeguard.git import GitRepo
from qeguard.integrity.gate import in_ci, open_context, run_verify, run_verify_commits
from qeguard.integrity.layout import find_workspace
from qeguard.integrity.override import ENV as OVERRIDE_ENV
from qeguard.integrity.trust_source import ROOT_ENV
from qeguard.report import Override, Report

HOOKS = ("pre-commit", "commit-msg", "pre-push")
_ZERO = frozenset("0")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="check the tree against the signed manifests")
    p.add_argument(
        "--trust-root",
        metavar="COMMIT",
        help=f"the commit trust is walked from (also ${ROOT_ENV}; default: the first "
        "commit with .qeguard/, named in the report so that you can pin it)",
    )
    p.add_argument(
        "--trust-ref",
        metavar="REF",
        help="the base branch (CI: refs/remotes/origin/main): rollback is checked against "
        "it, and the change must contain its trust changes",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--staged",
        action="store_true",
        help="check the staged index, only what is staged (everything when nothing is)",
    )
    what.add_argument("--commit", metavar="REV", help="check the files of this commit")
    what.add_argument(
        "--range",
        metavar="BASE..TIP",
        help="check every commit of BASE..TIP against its parent, only what each changed",
    )
    p.add_argument(
        "--hook",
        choices=HOOKS,
        help="run as that git hook (what the installed hooks pass): pre-commit and "
        "commit-msg check the index, pre-push every pushed commit (from git's standard "
        "input or pre-commit's PRE_COMMIT_FROM_REF/TO_REF). Outside CI a tier short of "
        "its threshold but with a valid signature then only warns, and overrides pass",
    )
    p.add_argument("--remote", metavar="NAME", help="with --hook pre-push: the remote pushed to")
    p.add_argument(
        "--override",
        metavar="REASON",
        help=f"emergency override (also ${OVERRIDE_ENV}): with --hook, lets a blocked "
        "change through and records who, when and why; elsewhere it is only reported",
    )
    p.add_argument(
        "--message-file",
        type=Path,
        metavar="FILE",
        help="the commit message being made (commit-msg hook): a "
        "`Qeguard-Override: REASON` trailer there counts as an override",
    )
    add_output_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    root = args.repo.resolve() if args.repo else find_workspace().root
    outputs = output_pairs(args)
    hook: str | None = args.hook
    if hook in ("pre-commit", "commit-msg") and (args.commit or args.range):
        raise UsageError(f"--hook {hook} checks the index; drop --commit/--range")
    if hook == "pre-push" and (args.staged or args.commit or args.range):
        raise UsageError("--hook pre-push reads the pushed commits itself; drop the others")
    # The one relaxation, and only in a hook on a developer's machine.
    local = hook is not None and not in_ci()
    overrides = _overrides(root, args)
    message = _message(args.message_file)
    if hook == "pre-push" or args.range:
        report = _verify_commits(root, args, hook=hook, local=local, overrides=overrides)
    else:
        staged = args.staged or hook in ("pre-commit", "commit-msg")
        with console.progress("verifying") as bar:
            report = run_verify(
                root,
                trust_ref=args.trust_ref,
                trust_root=args.trust_root,
                staged=staged,
                rev=args.commit,
                local=local,
                overrides=overrides,
                message=message,
                cwd=Path.cwd(),
                progress=bar if bar.enabled and not (staged or args.commit) else None,
            )
    emit(report, outputs, console, render_options(args, console))
    return report.exit_code


def _overrides(root: Path, args: argparse.Namespace) -> list[Override]:
    reason = args.override or os.environ.get(OVERRIDE_ENV, "").strip() or None
    if reason is None:
        return []
    ctx = open_context(root)
    who = ctx.repo.user() if ctx.repo else os.environ.get("USER", "unknown")
    return [Override(reason=reason, who=who, when=datetime.now(UTC).isoformat(timespec="seconds"))]


def _message(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(
            f"cannot read the commit message: {exc.strerror}", where=str(path)
        ) from None


def _verify_commits(
    root: Path,
    args: argparse.Namespace,
    *,
    hook: str | None,
    local: bool,
    overrides: list[Override],
) -> Report:
    if args.trust_ref:
        raise UsageError(
            "--range and --hook pre-push check each commit against its parent; drop --trust-ref"
        )
    repo = GitRepo(root)
    base: str | None
    if args.range:
        base_name, sep, tip_name = args.range.partition("..")
        if not sep or not base_name or not tip_name or tip_name.startswith("."):
            raise UsageError("expected BASE..TIP", where="--range")
        base = repo.resolve(base_name, where="--range")
        tip = repo.resolve(tip_name, where="--range")
        commits = repo.commits_to_push(tip, [base])
    else:
        base, commits = _pushed(repo, args.remote)
    return run_verify_commits(
        root,
        commits,
        base=base,
        trust_root=args.trust_root,
        local=local,
        overrides=overrides,
        cwd=Path.cwd(),
    )


def _pushed(repo: GitRepo, remote: str | None) -> tuple[str | None, list[tuple[str, str | None]]]:
    """The commits a push sends that the remote does not have, and a commit it has (where
    the trust root is looked for). From pre-commit's environment, else git's pre-push
    input: `<local ref> <local sha> <remote ref> <remote sha>` per line."""
    remote = remote or os.environ.get("PRE_COMMIT_REMOTE_NAME") or None
    known = [f"--remotes={remote}"] if remote else ["--remotes"]
    updates: list[tuple[str, str | None]] = []
    to_ref = os.environ.get("PRE_COMMIT_TO_REF")
    if to_ref:
        updates.append((to_ref, os.environ.get("PRE_COMMIT_FROM_REF") or None))
    else:
        for line in _stdin_lines():
            parts = line.split()
            if len(parts) == 4:
                updates.append((parts[1], None if set(parts[3]) <= _ZERO else parts[3]))
    if not updates:
        updates.append(("HEAD", None))  # run by hand, or pre-commit pushing a first commit
    base: str | None = None
    seen: dict[str, str | None] = {}
    for local_sha, remote_sha in updates:
        if set(local_sha) <= _ZERO:
            continue  # deleting a remote branch: nothing to verify
        exclude = list(known)
        if remote_sha is not None and repo.object_exists(remote_sha):
            exclude.append(remote_sha)
            base = base or remote_sha
        for commit, parent in repo.commits_to_push(
            repo.resolve(local_sha, where="pre-push"), exclude
        ):
            seen.setdefault(commit, parent)
    if base is None and remote:
        for name in (
            f"refs/remotes/{remote}/HEAD",
            f"refs/remotes/{remote}/main",
            f"refs/remotes/{remote}/master",
        ):
            if repo.object_exists(name):
                base = repo.resolve(name, where="pre-push")
                break
    return base, list(seen.items())


def _stdin_lines() -> list[str]:
    """git's pre-push input; nothing when run by hand at a terminal (or without stdin)."""
    try:
        if sys.stdin is None or sys.stdin.isatty():
            return []
        return sys.stdin.read().splitlines()
    except (OSError, ValueError):
        return []
