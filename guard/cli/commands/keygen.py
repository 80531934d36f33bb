"""`qeguard keygen`: a new OpenSSH Ed25519 key pair (private key 0600, folder 0700)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from platformdirs import user_config_path
from qeguard.cli.console import Console
from qeguard.errors import ExitCode, UsageError
from qeguard.fsutil import atomic_write
from qeguard.integrity.keys import PASSPHRASE_ENV, check_key_name, generate, load_signing_key


def default_key_dir() -> Path:
    return user_config_path("qeguard") / "keys"


def find_key(given: Path, *, suffix: str = "") -> Path:
    """`given` when it exists or names a folder; else the key `qeguard keygen --name
    GIVEN` made (`--key alice` works from any folder), when there is one."""
    if given.exists() or len(given.parts) != 1:
        return given
    made = default_key_dir() / f"{given.name}{suffix}"
    return made if made.exists() else given


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "keygen", help="generate a signing key, or print an existing key's public line"
    )
    p.add_argument("--name", help="signer name, used as the key comment and file name")
    p.add_argument(
        "--out",
        type=Path,
        help="private key path (default: the user config folder, never the repo)",
    )
    p.add_argument(
        "--key",
        type=Path,
        help="print the public line of an existing private key (a path, or a key name)",
    )
    secret = p.add_mutually_exclusive_group()
    secret.add_argument(
        "--passphrase",
        action="store_true",
        help=f"encrypt the key: reads {PASSPHRASE_ENV}, else asks twice at the terminal "
        "(the default at a terminal)",
    )
    secret.add_argument(
        "--no-passphrase",
        action="store_true",
        help="write the key unencrypted, without asking (the default without a terminal)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing key file, or write one inside a git work tree",
    )
    p.set_defaults(func=run)


def passphrase_prompt(console: Console, path: Path) -> Callable[[], bytes] | None:
    """How `load_signing_key` asks for an existing key's passphrase: at a terminal only."""
    if not console.interactive:
        return None
    return lambda: console.secret(f"passphrase for {path}: ").encode("utf-8")


def _new_passphrase(args: argparse.Namespace, console: Console) -> bytes | None:
    if args.no_passphrase:
        return None
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env.encode("utf-8")
    if not console.interactive:
        if args.passphrase:
            raise UsageError(
                "--passphrase: no terminal to ask for the passphrase",
                hint=f"set {PASSPHRASE_ENV}, run keygen at a terminal, or pass --no-passphrase",
            )
        return None  # a script asked for a key; it said nothing about a passphrase
    first = console.secret("passphrase for the new key: ")
    if not first:
        raise UsageError(
            "empty passphrase: the key was not written",
            hint="type a passphrase, or pass --no-passphrase for an unencrypted key",
        )
    if console.secret("the same passphrase again: ") != first:
        raise UsageError("the two passphrases differ: the key was not written")
    return first.encode("utf-8")


def _inside_work_tree(path: Path) -> Path | None:
    """The git work tree that would hold `path` without ignoring it, else None."""
    from qeguard.git import open_repo
    from qeguard.integrity.layout import find_workspace

    folder = path.resolve().parent
    while not folder.exists():  # find_workspace needs a real folder to start from
        folder = folder.parent
    ws = find_workspace(folder)
    repo = open_repo(ws.root) if ws.is_git else None
    if repo is None:
        return None
    rel = path.resolve().relative_to(ws.root.resolve()).as_posix()
    return None if repo.is_ignored(rel) else ws.root


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    if args.key:
        path = find_key(args.key)
        key = load_signing_key(path, prompt=passphrase_prompt(console, path))
        console.print(key.public.openssh)
        return ExitCode.OK
    if not args.name:
        raise UsageError("keygen needs --name (or --key to read an existing key)")
    name = check_key_name(args.name)
    if args.out is None:
        folder = default_key_dir()
        # Private keys only: nobody else may list or read them.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        out: Path = folder / name
    else:
        out = args.out
    if out.exists() and not args.force:
        raise UsageError(
            "the key file exists", where=str(out), hint="choose another --out, or pass --force"
        )
    tree = _inside_work_tree(out)
    if tree is not None:
        message = (
            f"{out} is inside the git work tree {tree} and not ignored: "
            "one `git add -A` would commit the private key"
        )
        if not args.force:
            raise UsageError(
                message,
                hint=f"omit --out (keys go to {default_key_dir()}), write it outside the "
                "repository, add it to .gitignore, or pass --force",
            )
        console.warn(message)
    passphrase = _new_passphrase(args, console)
    private, public = generate(name, passphrase)
    atomic_write(out, private, mode=0o600)
    atomic_write(out.with_name(out.name + ".pub"), (public + "\n").encode("utf-8"), mode=0o644)
    state = "encrypted" if passphrase else "unencrypted"
    console.info(f"wrote private key {out} (mode 0600, {state}) and {out}.pub")
    console.print(public)
    return ExitCode.OK
