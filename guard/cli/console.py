"""Where commands write: stdout for reports, stderr for everything meant for people."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from qeguard.cli.progress import Progress


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
        # A dumb terminal shows escape codes as garbage.
        return os.environ.get("TERM") != "dumb" and _is_tty(self.out)

    @property
    def interactive(self) -> bool:
        """Someone can answer a question: stdin and stderr are terminals."""
        return _is_tty(self.err) and _is_tty(sys.stdin)

    def progress(self, label: str) -> Progress:
        """A progress bar on stderr; never under `-q`."""
        from qeguard.cli.progress import Progress

        return Progress(label, stream=self.err, enabled=False if self.quiet else None)

    def secret(self, prompt: str) -> str:
        """Ask for a secret at the terminal, without echo. Callers check `interactive`."""
        import getpass

        try:
            return getpass.getpass(prompt, stream=self.err)
        except EOFError:  # the terminal closed: the same as no answer
            return ""

    def print(self, text: str = "") -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def result(self, text: str) -> None:
        """What a command did (`core: co-signed ...`), on stdout; nothing under `-q`."""
        if not self.quiet:
            self.print(text)

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


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
