"""A small progress bar on stderr for long scans; silent unless stderr is a terminal.

It stays hidden for the first second, so quick runs (and pre-commit hooks) print nothing,
and under `-q` (`Console.progress` builds it disabled). Work that learns its size late
calls `expect(total)`: the bar then shows the total and the rate.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

_WIDTH = 30
_REDRAW_S = 0.1


class Progress:
    """`start(total)`, `advance(n)` (or call it) as work completes, `expect(total)` when the
    total becomes known, `finish()`; usable as a context manager."""

    def __init__(
        self,
        label: str = "scanning",
        *,
        unit: str = "files",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        delay_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = _is_tty(self.stream) and os.environ.get("TERM") != "dumb"
        self.enabled = enabled
        self.delay_s = delay_s
        self._clock = clock
        self.total = 0
        self.done = 0
        self._started = 0.0
        self._last_draw = 0.0
        self._drawn = False

    def start(self, total: int) -> None:
        self.total = max(total, 0)
        self.done = 0
        self._started = self._clock()
        self._drawn = False

    def expect(self, total: int) -> None:
        """The total, once known (the count so far is kept)."""
        self.total = max(total, 0)

    def __call__(self, n: int) -> None:
        self.advance(n)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = self._clock()
        if now - self._started < self.delay_s:
            return
        if self._drawn and now - self._last_draw < _REDRAW_S and self.done < self.total:
            return
        self._last_draw = now
        self._draw()

    def finish(self) -> None:
        if self.enabled and self._drawn:
            # Clear the line so the report starts at column 0 on a clean line.
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
        self._drawn = False

    def line(self) -> str:
        """The bar as text, e.g. `scanning [#######-------] 512/1024  50% 2,048 files/s`."""
        elapsed = self._clock() - self._started
        rate = f" {self.done / elapsed:,.0f} {self.unit}/s" if elapsed > 0 and self.done else ""
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = round(_WIDTH * frac)
            bar = "#" * filled + "-" * (_WIDTH - filled)
            return f"{self.label} [{bar}] {self.done}/{self.total} {frac:4.0%}{rate}"
        return f"{self.label} {self.done} {self.unit}{rate}"

    def _draw(self) -> None:
        self.stream.write("\r" + self.line())
        self.stream.flush()
        self._drawn = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
