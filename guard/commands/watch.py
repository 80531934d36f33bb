"""`qeguard watch` (not implemented yet)."""

from __future__ import annotations

import argparse
from typing import Any

from guard.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("watch", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Any) -> int:
    raise UsageError("`qeguard watch` is not implemented yet")
