"""GitHub-flavoured Markdown for pull-request comments and `$GITHUB_STEP_SUMMARY`."""

from __future__ import annotations

import html
import re

from qeguard.report import Finding, Report

# Characters that start Markdown syntax; escaped so a file named `*x*` or `[a](b)` shows
# literally and cannot inject links or images into a PR comment.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_WHITESPACE = re.compile(r"[\r\n\t\x0b\x0c]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def escape(text: str) -> str:
    """Make untrusted text inert inside a Markdown table cell (one line, no HTML, no links)."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = _CONTROL.sub("", _WHITESPACE.sub(" ", text))
    # html.escape first: GitHub passes some raw HTML through, and the backslashes added
    # next must not be read as part of an entity.
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def where(finding: Finding) -> str:
    parts: list[str] = []
    if finding.package:
        pkg = f"{finding.package}=={finding.version}" if finding.version else finding.package
        parts.append(escape(pkg))
    if finding.location:
        parts.append(escape(str(finding.location)))
    return " ".join(parts) if parts else "-"


def _row(report: Report, f: Finding) -> str:
    # Bold marks the findings that fail the run; the rest are reported but below fail_on.
    sev = f"**{f.severity.value}**" if report.is_failing(f) else f.severity.value
    cells = [
        sev,
        escape(f.rule),
        where(f),
        escape(f.tier) if f.tier else "-",
        escape(f.message or f.title),
        escape(f.fix) if f.fix else "-",
    ]
    return "| " + " | ".join(cells) + " |"


_TABLE_HEAD = [
    "| Severity | Rule | Where | Tier | Message | Fix |",
    "|---|---|---|---|---|---|",
]


def render(report: Report, *, color: bool = False, max_bytes: int | None = None) -> str:
    """Render; with `max_bytes`, drop table rows (saying how many) to stay under that size."""
    verdict = report.verdict.value.upper()
    counts = ", ".join(f"{n} {sev}" for sev, n in report.counts.items() if n) or "no findings"
    active = [f for f in report.sorted_findings() if f.suppressed is None]
    suppressed = [f for f in report.sorted_findings() if f.suppressed is not None]
    head = [f"## qeguard {escape(report.command)}: {verdict}", ""]
    meta = [f"**{counts}**"]
    if suppressed:
        meta.append(f"{len(suppressed)} suppressed")
    meta.append(f"fails on {report.fail_on.value} and above")
    if report.commit:
        meta.append(f"commit {escape(report.commit[:12])}")
    if report.trust_source:
        meta.append(f"trust from {escape(report.trust_source)}")
    head += [" · ".join(meta), ""]
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
    if report.database is not None:
        db = report.database
        age = f", {db.age_days} days old" if db.age_days is not None else ""
        date = f" {escape(db.date)}" if db.date else ""
        head += [f"Vulnerability data: {escape(db.name)}{date} ({escape(db.source)}{age})", ""]
    for o in report.overrides:
        head += [f"Override by {escape(o.who)} at {escape(o.when)}: {escape(o.reason)}", ""]

    rows = [_row(report, f) for f in active]
    sup_rows = [
        f"| {escape(f.rule)} | {where(f)} | {escape(f.suppressed.kind)} | "
        f"{escape(f.suppressed.reason)} |"
        for f in suppressed
        if f.suppressed is not None
    ]

    def assemble(n_rows: int, n_sup: int) -> str:
        out = list(head)
        if rows:
            out += ["### Findings", "", *_TABLE_HEAD, *rows[:n_rows]]
            if n_rows < len(rows):
                out.append("")
                out.append(
                    f"{len(rows) - n_rows} more findings not shown here; see the JSON or "
                    "SARIF report."
                )
            out.append("")
        if sup_rows:
            out += [
                f"<details><summary>Suppressed ({len(sup_rows)})</summary>",
                "",
                "| Rule | Where | Kind | Reason |",
                "|---|---|---|---|",
                *sup_rows[:n_sup],
                "",
            ]
            if n_sup < len(sup_rows):
                out += [f"{len(sup_rows) - n_sup} more not shown.", ""]
            out += ["</details>", ""]
        return "\n".join(out)

    text = assemble(len(rows), len(sup_rows))
    if max_bytes is None or len(text.encode("utf-8")) <= max_bytes:
        return text
    # Over budget: drop suppressed rows first, then findings, most severe kept.
    n_sup = 0
    budget_base = len(assemble(0, 0).encode("utf-8")) + 200
    used = budget_base
    n_rows = 0
    for row in rows:
        size = len(row.encode("utf-8")) + 1
        if used + size > max_bytes:
            break
        used += size
        n_rows += 1
    for row in sup_rows if n_rows == len(rows) else []:
        size = len(row.encode("utf-8")) + 1
        if used + size > max_bytes:
            break
        used += size
        n_sup += 1
    return assemble(n_rows, n_sup)
