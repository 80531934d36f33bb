"""`qeguard init` (not implemented yet)."""

from __future__ import annotations

import argparse
from typing import Any

from guard.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("init", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Any) -> int:
    raise UsageError("`qeguard init` is not implemented yet")
