"""Where commands write: stdout for reports, stderr for everything meant for people."""

from __future__ import annotations

import os
import sys
from typing import TextIO


class Console:
    """Where commands write. Commands never call print(); tests read capsys through this."""

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, *, quiet: bool = False
    ):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet

    @property
    def color(self) -> bool:
        if os.environ.get("NO_COLOR"):
            return False
        if os.environ.get("FORCE_COLOR"):
            return True
        return self.out.isatty()

    @property
    def interactive(self) -> bool:
        return self.err.isatty()

    def print(self, text: str = "") -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def info(self, text: str) -> None:
        if not self.quiet:
            self.err.write(text + "\n")
            self.err.flush()

    def warn(self, text: str) -> None:
        self.err.write(f"warning: {text}\n")
        self.err.flush()

    def error(self, text: str) -> None:
        self.err.write(f"error: {text}\n")
        self.err.flush()
