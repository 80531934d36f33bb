"""GitHub-flavoured Markdown for pull-request comments and `$GITHUB_STEP_SUMMARY`.

The output always stays under `RenderOptions.markdown_max_bytes` (1 MiB, GitHub's step
summary limit, by default): rows are dropped from the end (suppressed first, then the
least severe findings) and a line says how many were left out.
"""

from __future__ import annotations

import html
import re

from qeguard.render import DEFAULT_OPTIONS, RenderOptions
from qeguard.report import Finding, Report, advisory_url, counted, shorten

# Characters that start Markdown syntax; escaped so a file named `*x*` or `[a](b)` shows
# literally and cannot inject links or images into a PR comment.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_WHITESPACE = re.compile(r"[\r\n\t\x0b\x0c]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")

MESSAGE_CELL = 300  # characters of a message shown in a table cell
IDS_SHOWN = 3  # advisory ids (and aliases) linked in a cell before "+N"
PLACES_SHOWN = 3
GROUP_MIN = 10  # a larger group of one rule's findings in one tier is one row when cut
# Room for the lines that say what was left out.
_NOTE_ROOM = 600


def escape(text: str) -> str:
    """Make untrusted text inert inside a Markdown table cell (one line, no HTML, no links)."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = _CONTROL.sub("", _WHITESPACE.sub(" ", text))
    # html.escape first: GitHub passes some raw HTML through, and the backslashes added
    # next must not be read as part of an entity.
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def link(advisory_id: str) -> str:
    """An advisory id linked to its osv.dev page (plain escaped text if it is no id)."""
    url = advisory_url(advisory_id)
    return f"[{escape(advisory_id)}]({url})" if url else escape(advisory_id)


def ids_cell(finding: Finding) -> str:
    """The advisory id and its aliases, each linked; `-` for findings without one."""
    ids = list(finding.advisory_ids)
    if not ids:
        return "-"
    names = ids + [a for a in finding.aliases if a not in ids]
    cell = ", ".join(link(i) for i in names[:IDS_SHOWN])
    if len(names) > IDS_SHOWN:
        cell += f" +{len(names) - IDS_SHOWN}"
    return cell


def where(finding: Finding) -> str:
    parts: list[str] = []
    if finding.package:
        pkg = f"{finding.package}=={finding.version}" if finding.version else finding.package
        parts.append(escape(pkg))
    places = finding.locations
    if places:
        shown = ", ".join(escape(str(p)) for p in places[:PLACES_SHOWN])
        if len(places) > PLACES_SHOWN:
            shown += f" +{len(places) - PLACES_SHOWN} more"
        parts.append(shown)
    return " ".join(parts) if parts else "-"


def _row(report: Report, f: Finding) -> str:
    # Bold marks the findings that fail the run; the rest are reported but below fail_on.
    sev = f"**{f.severity.value}**" if report.is_failing(f) else f.severity.value
    cells = [
        sev,
        escape(f.rule),
        ids_cell(f),
        where(f),
        escape(f.tier) if f.tier else "-",
        escape(shorten(f.message or f.title, MESSAGE_CELL)),
        escape(shorten(f.fix, MESSAGE_CELL)) if f.fix else "-",
    ]
    return "| " + " | ".join(cells) + " |"


_TABLE_HEAD = [
    "| Severity | Rule | ID | Where | Tier | Message | Fix |",
    "|---|---|---|---|---|---|---|",
]


def checked(report: Report) -> str | None:
    """One line on what the run read and checked (None when it records nothing)."""
    parts: list[str] = []
    if report.tiers:
        files = sum(t.files for t in report.tiers)
        parts.append(f"{counted(len(report.tiers), 'tier')} ({counted(files, 'protected file')})")
    inputs = report.inputs
    if inputs is not None:
        names = ", ".join(escape(p) for p in inputs.files[:5])
        more = f" +{len(inputs.files) - 5} more" if len(inputs.files) > 5 else ""
        files_part = f" ({names}{more})" if inputs.files else ""
        parts.append(f"{counted(len(inputs.files), 'dependency file')}{files_part}")
        parts.append(
            f"{counted(inputs.packages, 'package')} ({counted(inputs.dependencies, 'declaration')})"
        )
        if inputs.services:
            parts.append(f"services: {escape(', '.join(inputs.services))}")
    db = report.database
    if db is not None:
        bits = [escape(db.source)]
        if db.age_days is not None:
            bits.append(f"{db.age_days} days old")
        if db.records is not None:
            bits.append(f"{db.records} records")
        date = f" {escape(db.date)}" if db.date else ""
        parts.append(f"vulnerability data: {escape(db.name)}{date} ({', '.join(bits)})")
    return "Checked: " + " · ".join(parts) if parts else None


def _head(report: Report) -> list[str]:
    verdict = report.verdict.value.upper()
    counts = ", ".join(f"{n} {sev}" for sev, n in report.counts.items() if n) or "no findings"
    suppressed = len(report.findings) - len(report.active_findings)
    head = [f"## qeguard {escape(report.command)}: {verdict}", ""]
    meta = [f"**{counts}**"]
    if suppressed:
        meta.append(f"{suppressed} suppressed")
    meta.append(f"fails on {report.fail_on.value} and above")
    if report.commit:
        meta.append(f"commit {escape(report.commit[:12])}")
    if report.trust_source:
        meta.append(f"trust from {escape(report.trust_source)}")
    head += [" · ".join(meta), ""]
    applied = [x for x in report.fixes if x.applied]
    if applied:
        head += [
            f"{counted(len(applied), 'fix', 'fixes')} applied; the findings "
            "and verdict are what is left.",
            "",
        ]
    line = checked(report)
    if line:
        head += [line, ""]
    if report.tiers:
        head += ["| Tier | Files | Signers | Threshold | On change |", "|---|---|---|---|---|"]
        for t in report.tiers:
            signers = ", ".join(escape(s) for s in t.signers) or "-"
            status = "" if t.threshold_met else " (not met)"
            head.append(
                f"| {escape(t.name)} | {t.files} | {signers} | "
                f"{t.threshold or '0 (none needed)'}{status} | {escape(t.on_change)} |"
            )
        head.append("")
    if report.database is not None and report.database.note:
        head += [f"Note: {escape(report.database.note)}", ""]
    for o in report.overrides:
        head += [f"Override by {escape(o.who)} at {escape(o.when)}: {escape(o.reason)}", ""]
    return head


def _fix_rows(report: Report) -> list[str]:
    return [
        f"| {escape(x.package)} | {escape(x.version or '-')} | {escape(x.fixed)} | "
        f"{escape(x.path or '-')} | {'applied' if x.applied else 'suggested'} |"
        for x in report.fixes
    ]


def _sup_rows(report: Report) -> list[str]:
    return [
        f"| {escape(f.rule)} | {ids_cell(f)} | {where(f)} | {escape(f.suppressed.kind)} | "
        f"{escape(f.suppressed.reason)} |"
        for f in report.sorted_findings()
        if f.suppressed is not None
    ]


def _size(lines: list[str]) -> int:
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


def _group_row(report: Report, group: list[Finding]) -> str:
    """One row for many findings of one rule, tier and severity (changed files of a tier)."""
    f = group[0]
    sev = f"**{f.severity.value}**" if report.is_failing(f) else f.severity.value
    places = [str(p) for g in group for p in g.locations]
    shown = ", ".join(escape(p) for p in places[:PLACES_SHOWN])
    fixes = {g.fix for g in group}
    fix = next(iter(fixes)) if len(fixes) == 1 else None
    cells = [
        sev,
        escape(f.rule),
        "-",
        f"{len(group)} findings: {shown} +{len(group) - PLACES_SHOWN} more",
        escape(f.tier) if f.tier else "-",
        escape(shorten(f.message or f.title, MESSAGE_CELL)),
        escape(shorten(fix, MESSAGE_CELL)) if fix else "-",
    ]
    return "| " + " | ".join(cells) + " |"


def _grouped(report: Report, active: list[Finding]) -> list[tuple[str, int]]:
    """Rows with every large group of place findings (not about a package) made one row,
    at the place of its first finding, so that advisories still fit beside them."""
    groups: dict[tuple[str, str | None, str], list[Finding]] = {}
    for f in active:
        if not f.package:
            groups.setdefault((f.rule, f.tier, f.severity.value), []).append(f)
    big = {k for k, v in groups.items() if len(v) > GROUP_MIN}
    rows: list[tuple[str, int]] = []
    for f in active:
        key = (f.rule, f.tier, f.severity.value)
        if f.package or key not in big:
            rows.append((_row(report, f), 1))
        elif groups[key][0] is f:
            rows.append((_group_row(report, groups[key]), len(groups[key])))
    return rows


def render(report: Report, options: RenderOptions = DEFAULT_OPTIONS) -> str:
    """Render, grouping and then dropping rows (saying how many) to stay under the
    options' size."""
    head = _head(report)
    active = [f for f in report.sorted_findings() if f.suppressed is None]
    rows = [(_row(report, f), 1) for f in active]
    fixes = _fix_rows(report)
    sup = _sup_rows(report)
    budget = options.markdown_max_bytes - _size(head) - _NOTE_ROOM - 400  # table heads
    grouped = _size([r for r, _ in rows]) + _size(fixes) + _size(sup) > budget
    if grouped:
        rows = _grouped(report, active)
    counts = []
    for group in ([r for r, _ in rows], fixes, sup):  # most important first: what a cut keeps
        n = 0
        for row in group:
            size = len(row.encode("utf-8")) + 1
            if size > budget:
                break
            budget -= size
            n += 1
        counts.append(n)
        if n < len(group):
            budget = 0
    n_rows, n_fix, n_sup = counts

    out = list(head)
    if rows:
        out += ["### Findings", "", *_TABLE_HEAD, *(r for r, _ in rows[:n_rows]), ""]
        if grouped and any(n > 1 for _, n in rows[:n_rows]):
            out += [
                f"More than {GROUP_MIN} findings of one rule, tier and severity are one row.",
                "",
            ]
        left = len(active) - sum(n for _, n in rows[:n_rows])
        if left:
            out += [
                f"{left} more findings not shown (this summary stays under "
                f"{options.markdown_max_bytes} bytes); see the JSON or SARIF report.",
                "",
            ]
    elif not sup:
        out += ["No findings.", ""]
    if fixes:
        out += [
            "### Fixes",
            "",
            "| Package | Version | Fixed in | File | Status |",
            "|---|---|---|---|---|",
            *fixes[:n_fix],
            "",
        ]
        if n_fix < len(fixes):
            out += [f"{len(fixes) - n_fix} more fixes not shown.", ""]
    if sup:
        out += [
            f"<details><summary>Suppressed ({len(sup)})</summary>",
            "",
            "| Rule | ID | Where | Kind | Reason |",
            "|---|---|---|---|---|",
            *sup[:n_sup],
            "",
        ]
        if n_sup < len(sup):
            out += [f"{len(sup) - n_sup} more not shown.", ""]
        out += ["</details>", ""]
    text = "\n".join(out)
    if len(text.encode("utf-8")) > options.markdown_max_bytes:
        # Even the header does not fit (thousands of tiers): one line still says the verdict.
        text = one_line(report)
    return text


def one_line(report: Report) -> str:
    return (
        f"qeguard {escape(report.command)}: {report.verdict.value.upper()} "
        f"({len(report.active_findings)} findings); see the JSON or SARIF report.\n"
    )
