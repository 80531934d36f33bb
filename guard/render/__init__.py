"""Renderers of the guard report: one module per format, looked up by name here."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from qeguard.errors import UsageError
from qeguard.fsutil import atomic_write
from qeguard.report import Report

FORMATS = ("text", "json", "sarif", "markdown", "junit", "html")
STDOUT = "-"

# Used when --output comes without a --format before it.
_SUFFIX_FORMATS = {
    ".txt": "text",
    ".json": "json",
    ".sarif": "sarif",
    ".md": "markdown",
    ".markdown": "markdown",
    ".xml": "junit",
    ".html": "html",
    ".htm": "html",
}


class Renderer(Protocol):
    def __call__(self, report: Report, *, color: bool = False) -> str: ...


def renderer(fmt: str) -> Renderer:
    """The `render` function of `qeguard.render.<fmt>`."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    module = importlib.import_module(f"qeguard.render.{fmt}")
    render: Renderer = module.render
    return render


def render(report: Report, fmt: str, *, color: bool = False) -> str:
    return renderer(fmt)(report, color=color)


def write(report: Report, fmt: str, output: Path) -> None:
    """Render to a file atomically (a half-written SARIF upload is worse than none)."""
    atomic_write(output, render(report, fmt).encode("utf-8"))


def format_for_path(path: str) -> str:
    """The format an output file's suffix implies (`.sarif` -> sarif); text when unknown."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower(), "text")
