"""The guard report: `model` holds the data, one module per output format renders it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from guard.errors import UsageError
from guard.fsutil import atomic_write
from guard.report.model import Report

FORMATS = ("text", "json", "sarif", "markdown", "junit", "html")


class Renderer(Protocol):
    def __call__(self, report: Report, *, color: bool = False) -> str: ...


def renderer(fmt: str) -> Renderer:
    """The `render` function of `guard.report.<fmt>`."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    module = importlib.import_module(f"guard.report.{fmt}_format")
    render: Renderer = module.render
    return render


def render(report: Report, fmt: str, *, color: bool = False) -> str:
    return renderer(fmt)(report, color=color)


def write(report: Report, fmt: str, output: Path) -> None:
    """Render to a file atomically (a half-written SARIF upload is worse than none)."""
    atomic_write(output, render(report, fmt).encode("utf-8"))
