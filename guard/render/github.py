"""GitHub Actions: workflow-command annotations and the job's step summary.

GitHub shows at most 10 error and 10 warning annotations per step (and 10 notices), and
a step summary of at most 1 MiB; past those limits it drops output silently, so qeguard
caps them itself and says what was left out.
"""

import os
from dataclasses import replace
from pathlib import Path

from qeguard.render import DEFAULT_OPTIONS, RenderOptions
from qeguard.render import markdown as markdown_format
from qeguard.render.sarif import artifact, level
from qeguard.report import Finding, Report, counted

MAX_PER_LEVEL = 10
STEP_SUMMARY_LIMIT = 1024 * 1024
MAX_MESSAGE = 4000
# Room for what other steps of the same job wrote to the file, and for the cut note.
_SUMMARY_MARGIN = 4096

_LEVEL_COMMAND = {"error": "error", "warning": "warning", "note": "notice"}


def escape_data(text: str) -> str:
    """Escape a workflow command's message (as actions/toolkit's escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command property value (as actions/toolkit's escapeProperty)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _clean(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def annotation(report: Report, finding: Finding) -> str:
    """One `::error file=...,line=...,title=...::message` line for a finding."""
    command = _LEVEL_COMMAND[level(report, finding)]
    path, line = artifact(finding, report)
    props = []
    if path is not None:  # without a file, the annotation is on the run
        props.append(f"file={escape_property(_clean(path))}")
        if line is not None and line >= 1:
            props.append(f"line={line}")
    title = f"{finding.rule}: {finding.title}" if finding.title else finding.rule
    props.append(f"title={escape_property(_clean(title))}")
    message = finding.message or finding.title
    ids = finding.advisory_ids
    if ids and ids[0] not in message:
        message = f"{ids[0]}: {message}"
    if finding.package:
        pkg = f"{finding.package}=={finding.version}" if finding.version else finding.package
        message = f"{pkg}: {message}"
    if finding.fix:
        message = f"{message}\nFix: {finding.fix}"
    message = _clean(message)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "\u2026"
    return f"::{command} {','.join(props)}::{escape_data(message)}"


def annotations(report: Report) -> list[str]:
    """Annotation lines for the active findings, at most 10 per level, most severe first.

    When some are left out, one more notice line says how many.
    """
    lines: list[str] = []
    shown = {"error": 0, "warning": 0, "notice": 0}
    left_out = 0
    for f in report.sorted_findings():
        if f.suppressed is not None:
            continue
        command = _LEVEL_COMMAND[level(report, f)]
        if shown[command] >= MAX_PER_LEVEL:
            left_out += 1
            continue
        shown[command] += 1
        lines.append(annotation(report, f))
    if left_out:
        # A notice, so it is shown even when the error and warning slots are full.
        if shown["notice"] >= MAX_PER_LEVEL:
            lines.pop(max(i for i, s in enumerate(lines) if s.startswith("::notice ")))
            left_out += 1
        lines.append(
            "::notice title=qeguard::"
            + escape_data(
                f"{counted(left_out, 'more finding')} not annotated "
                "(GitHub shows 10 per level); see the step summary or the SARIF report."
            )
        )
    return lines


def append_step_summary(
    report: Report, path: str | os.PathLike[str], options: RenderOptions = DEFAULT_OPTIONS
) -> None:
    """Append the Markdown report to `$GITHUB_STEP_SUMMARY`, keeping the file under 1 MiB."""
    target = Path(path)
    existing = target.stat().st_size if target.exists() else 0
    budget = min(STEP_SUMMARY_LIMIT - existing - _SUMMARY_MARGIN, options.markdown_max_bytes)
    if budget <= 0:
        return
    text = markdown_format.render(report, replace(options, markdown_max_bytes=budget))
    if len(text.encode("utf-8")) > budget:
        return
    with target.open("a", encoding="utf-8") as f:
        f.write("\n" + text if existing else text)
