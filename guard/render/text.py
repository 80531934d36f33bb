"""The terminal rendering: a header with what was checked, vulnerabilities in a compact
table grouped by package (as pip-audit prints them), other findings grouped by severity,
fixes, suppressed findings, a verdict."""

from __future__ import annotations

import re
from collections.abc import Sequence

from qeguard.render import DEFAULT_OPTIONS, RenderOptions
from qeguard.report import SEVERITY_ORDER, Finding, Report, Severity, Verdict, counted, shorten
from qeguard.rules import RuleId

FIX_COLUMN = 40
ALIAS_COLUMN = 60
DESCRIPTION = 300

_RESET = "\x1b[0m"
_STYLES = {
    Severity.CRITICAL: "\x1b[1;31m",
    Severity.HIGH: "\x1b[31m",
    Severity.UNKNOWN: "\x1b[35m",
    Severity.MEDIUM: "\x1b[33m",
    Severity.LOW: "\x1b[36m",
    Severity.INFO: "\x1b[2m",
}
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_GREEN = "\x1b[1;32m"
_RED = "\x1b[1;31m"

# File names and advisory text come from the repository under test: an ESC byte in a path
# must not be able to rewrite the reviewer's terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(text: str, *, indent: str | None = None) -> str:
    """Make untrusted text safe to print: control characters become visible escapes.

    With `indent`, line breaks are kept and continuation lines indented (for messages);
    without it the text stays on one line (paths, names).
    """
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if indent is not None:
        lines = text.replace("\r\n", "\n").split("\n")
        return ("\n" + indent).join(clean(line) for line in lines)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _paint(text: str, style: str, color: bool) -> str:
    return f"{style}{text}{_RESET}" if color else text


def subject(finding: Finding) -> str:
    """What a finding is about: `pkg==1.0 (requirements.txt:3)`, `path:line`, or `-`."""
    parts: list[str] = []
    if finding.package:
        parts.append(
            f"{finding.package}=={finding.version}" if finding.version else finding.package
        )
    if finding.location:
        where = str(finding.location)
        # A source that is not a file names itself in parentheses already.
        parts.append(f"({where})" if parts and not where.startswith("(") else where)
    return clean(" ".join(parts)) if parts else "-"


def signer_state(threshold: int, signers: Sequence[str]) -> str:
    """`threshold 2: 1 signed (alice), NOT met`; a threshold-0 tier needs no signature."""
    who = f" ({', '.join(signers)})" if signers else ""
    if threshold == 0:
        return f"threshold 0 (no signature needed), {len(signers)} signed{who}"
    met = "met" if len(signers) >= threshold else "NOT met"
    return f"threshold {threshold}: {len(signers)} signed{who}, {met}"


def _header(report: Report) -> list[str]:
    commit = f"  commit {report.commit[:12]}" if report.commit else ""
    lines = [f"qeguard {report.command} {clean(report.target)}{commit}"]
    if report.trust_source:
        lines.append(f"  trust from: {clean(report.trust_source)}")
    for tier in report.tiers:
        state = signer_state(tier.threshold, [clean(s) for s in tier.signers])
        seq = f", sequence {tier.sequence}" if tier.sequence is not None else ""
        lines.append(
            f"  tier {clean(tier.name)}: {counted(tier.files, 'file')}, {state}{seq}, "
            f"on change {tier.on_change}"
        )
    db = report.database
    if db is not None:
        age = f", {db.age_days} days old" if db.age_days is not None else ""
        date = f" {db.date}" if db.date else ""
        note = f" ({clean(db.note)})" if db.note else ""
        lines.append(f"  database: {clean(db.name)}{date} [{db.source}]{age}{note}")
    for o in report.overrides:
        lines.append(f"  override by {clean(o.who)} at {clean(o.when)}: {clean(o.reason)}")
    return lines


def _checked(report: Report) -> list[str]:
    inputs = report.inputs
    if inputs is None:
        return []
    names = ", ".join(clean(p) for p in inputs.files[:5])
    more = f", +{len(inputs.files) - 5} more" if len(inputs.files) > 5 else ""
    files = f" ({names}{more})" if inputs.files else ""
    services = f"; services: {', '.join(clean(x) for x in inputs.services)}"
    return [
        f"  checked: {counted(len(inputs.files), 'dependency file')}{files}, "
        f"{counted(inputs.packages, 'package')} ({counted(inputs.dependencies, 'declaration')})"
        f"{services if inputs.services else ''}"
    ]


def _finding_lines(report: Report, f: Finding, color: bool) -> list[str]:
    tier = f"  [tier {clean(f.tier)}]" if f.tier else ""
    marker = "" if report.is_failing(f) else _paint("  (below fail_on)", _DIM, color)
    ids = f"  {', '.join(clean(i) for i in f.advisory_ids[:5])}" if f.advisory_ids else ""
    lines = [
        f"  {_paint(f.rule, _BOLD, color)}{ids}  {subject(f)}{tier}{marker}",
        f"    {clean(f.title)}" if f.title and f.title != f.message else "",
        f"    {clean(f.message, indent='    ')}",
    ]
    if f.also_at:
        lines.append(f"    also at: {', '.join(clean(str(a)) for a in f.also_at)}")
    if f.fix:
        lines.append(f"    fix: {clean(f.fix)}")
    return [line for line in lines if line]


def _table(rows: list[list[str]], styles: list[str | None], color: bool) -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row, style in zip(rows, styles, strict=True):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        line = "  ".join(cells).rstrip()
        out.append(_paint(line, style, color) if style else line)
    return out


def vulnerability_table(report: Report, vulns: list[Finding], options: RenderOptions) -> list[str]:
    """pip-audit's compact table: one row per advisory, grouped by package version."""
    color = options.color
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in vulns:
        groups.setdefault(((f.package or "").lower(), f.version or ""), []).append(f)
    head = ["Package", "Version", "ID", "Severity", "Fix versions"]
    if options.aliases:
        head.append("Aliases")
    head.append("Declared in")
    rows: list[list[str]] = [head, ["-" * len(h) for h in head]]
    styles: list[str | None] = [_BOLD, None]
    notes: dict[int, str] = {}
    for key in sorted(groups):
        for n, f in enumerate(groups[key]):
            ids = f.advisory_ids
            places = f.locations
            declared = clean(str(places[0])) if places else "-"
            if len(places) > 1:
                declared += f" +{len(places) - 1}"
            row = [
                clean(f.package or "-") if n == 0 else "",
                clean(f.version or "-") if n == 0 else "",
                clean(ids[0]) if ids else f.rule,
                f.severity.value,
                shorten(clean(", ".join(f.fix_versions)), FIX_COLUMN) or "-",
            ]
            if options.aliases:
                aliases = [a for a in f.aliases if a not in ids]
                row.append(shorten(clean(", ".join(aliases)), ALIAS_COLUMN) or "-")
            row.append(declared)
            if options.descriptions and f.message:
                notes[len(rows)] = shorten(clean(f.message), DESCRIPTION)
            rows.append(row)
            styles.append(_STYLES[f.severity] if report.is_failing(f) else None)
    lines = _table(rows, styles, color)
    if not notes:
        return lines
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in notes:
            out.append(_paint(f"    {notes[i]}", _DIM, color))
    return out


def _fix_lines(report: Report) -> list[str]:
    out = []
    for x in report.fixes:
        frm = f" {clean(x.version)}" if x.version else ""
        where = f" in {clean(x.path)}" if x.path else ""
        state = "applied" if x.applied else "suggested"
        out.append(f"  {clean(x.package)}{frm} -> {clean(x.fixed)}{where} ({state})")
    return out


def render(report: Report, options: RenderOptions = DEFAULT_OPTIONS) -> str:
    """Render for a terminal. `quiet` keeps only the active findings."""
    color, quiet = options.color, options.quiet
    out: list[str] = [] if quiet else [*_header(report), *_checked(report), ""]
    active = [f for f in report.sorted_findings() if f.suppressed is None]
    suppressed = [f for f in report.sorted_findings() if f.suppressed is not None]
    vulns = [f for f in active if f.rule == RuleId.DEP_VULN and f.package]
    if vulns:
        packages = len({((f.package or "").lower(), f.version) for f in vulns})
        out.append(f"Vulnerabilities: {len(vulns)} in {counted(packages, 'package version')}")
        out.extend(vulnerability_table(report, vulns, options))
        out.append("")
    others = [f for f in active if not (f.rule == RuleId.DEP_VULN and f.package)]
    for sev in SEVERITY_ORDER:
        group = [f for f in others if f.severity is sev]
        if not group:
            continue
        out.append(_paint(f"{sev.value.upper()} ({len(group)})", _STYLES[sev], color))
        for f in group:
            out.extend(_finding_lines(report, f, color))
        out.append("")
    if quiet:
        return "\n".join(out).rstrip("\n") + ("\n" if out else "")
    if report.fixes:
        applied = sum(1 for x in report.fixes if x.applied)
        state = [f"{len(report.fixes) - applied} suggested"] if applied < len(report.fixes) else []
        if applied:
            state.append(f"{applied} applied; the findings above are what is left")
        out += [f"Fixes ({', '.join(state)})", *_fix_lines(report), ""]
    if not active:
        out.extend(["No findings.", ""])
    if suppressed:
        out.append(f"Suppressed ({len(suppressed)})")
        for f in suppressed:
            sup = f.suppressed
            assert sup is not None  # filtered above; narrows the type for mypy
            until = f", until {clean(sup.expires)}" if sup.expires else ""
            ids = f" {clean(f.advisory_ids[0])}" if f.advisory_ids else ""
            out.append(f"  {f.rule}{ids}  {subject(f)}  {sup.kind}: {clean(sup.reason)}{until}")
        out.append("")
    counts = ", ".join(f"{n} {sev}" for sev, n in report.counts.items() if n) or "0 findings"
    extra = f"; {len(suppressed)} suppressed" if suppressed else ""
    verdict = report.verdict.value.upper()
    style = _RED if report.verdict is Verdict.FAIL else _GREEN
    out.append(
        f"{counts}{extra}. Verdict: {_paint(verdict, style, color)} "
        f"(fail on {report.fail_on.value} and above; {report.duration_s:.1f}s)"
    )
    return "\n".join(out) + "\n"
