"""`qeguard keygen`: a new OpenSSH Ed25519 key pair (private key 0600)."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path
from typing import Any

from platformdirs import user_config_path
from qeguard.cli.console import Console
from qeguard.errors import ExitCode, UsageError
from qeguard.fsutil import atomic_write
from qeguard.integrity.keys import PASSPHRASE_ENV, generate, load_signing_key


def default_key_dir() -> Path:
    return user_config_path("qeguard") / "keys"


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
    p.add_argument("--key", type=Path, help="print the public line of an existing private key")
    p.add_argument(
        "--passphrase",
        action="store_true",
        help=f"encrypt the key (asks, or reads {PASSPHRASE_ENV})",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing key file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    if args.key:
        key = load_signing_key(args.key)
        console.print(key.public.openssh)
        return ExitCode.OK
    if not args.name:
        raise UsageError("keygen needs --name (or --key to read an existing key)")
    out: Path = args.out or default_key_dir() / args.name
    if out.exists() and not args.force:
        raise UsageError(
            "the key file exists", where=str(out), hint="choose another --out, or pass --force"
        )
    passphrase = None
    if args.passphrase:
        env = os.environ.get(PASSPHRASE_ENV)
        passphrase = (env or getpass.getpass("passphrase for the new key: ")).encode("utf-8")
    private, public = generate(args.name, passphrase)
    atomic_write(out, private, mode=0o600)
    atomic_write(out.with_name(out.name + ".pub"), (public + "\n").encode("utf-8"), mode=0o644)
    console.info(f"wrote private key {out} (mode 0600) and {out}.pub")
    console.print(public)
    return ExitCode.OK
