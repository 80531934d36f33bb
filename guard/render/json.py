"""The JSON rendering: `Report.to_dict()`, described by `report.schema.json` beside this file."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from qeguard.render import DEFAULT_OPTIONS, RenderOptions
from qeguard.report import Report

SCHEMA_RESOURCE = "report.schema.json"


def render(report: Report, options: RenderOptions = DEFAULT_OPTIONS) -> str:
    # ensure_ascii: paths with invalid UTF-8 arrive as lone surrogates, which cannot be
    # encoded as UTF-8 but survive as \\udcXX escapes.
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=True) + "\n"


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that every `render` output satisfies."""
    text = resources.files("qeguard.render").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
