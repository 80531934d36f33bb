"""Renderers of the guard report: one module per format, looked up by name here."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
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


# GitHub's limit for a job's step summary; Markdown is written there and to PR comments.
MARKDOWN_LIMIT = 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class RenderOptions:
    """How to render, beyond the report itself; every renderer takes the same options and
    reads the ones that apply to its format."""

    color: bool = False  # text: ANSI colour
    quiet: bool = False  # text: only the active findings
    descriptions: bool = False  # text: advisory descriptions (`--desc`)
    aliases: bool = False  # text: advisory aliases (`--aliases`)
    # SARIF: runAutomationDetails.id, so matrix jobs and subprojects keep separate analyses.
    # None leaves it out, and the upload step's `category:` decides.
    sarif_category: str | None = None
    markdown_max_bytes: int = MARKDOWN_LIMIT  # Markdown: the size it must stay under


DEFAULT_OPTIONS = RenderOptions()


class Renderer(Protocol):
    def __call__(self, report: Report, options: RenderOptions = DEFAULT_OPTIONS) -> str: ...


def renderer(fmt: str) -> Renderer:
    """The `render` function of `qeguard.render.<fmt>`."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    module = importlib.import_module(f"qeguard.render.{fmt}")
    render: Renderer = module.render
    return render


def render(report: Report, fmt: str, options: RenderOptions = DEFAULT_OPTIONS) -> str:
    return renderer(fmt)(report, options)


def write(report: Report, fmt: str, output: Path, options: RenderOptions = DEFAULT_OPTIONS) -> None:
    """Render to a file atomically (a half-written SARIF upload is worse than none)."""
    atomic_write(output, render(report, fmt, options).encode("utf-8"))


def format_for_path(path: str) -> str:
    """The format an output file's suffix implies (`.sarif` -> sarif); text when unknown."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower(), "text")
