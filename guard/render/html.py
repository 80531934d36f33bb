"""A single self-contained HTML page: summary and charts on top, a filterable findings table.

Everything is inline (CSS, SVG, a little JS) and a Content-Security-Policy forbids any
fetch, so the page can be archived as a CI artifact and opened offline. Without JS the
page is fully readable; JS only adds the filters.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from html import escape as _esc

from qeguard.report import SEVERITY_ORDER, Finding, Report, Severity, count_by

_COLORS = {
    Severity.CRITICAL: "#8b0000",
    Severity.HIGH: "#d1242f",
    Severity.UNKNOWN: "#8250df",
    Severity.MEDIUM: "#bf8700",
    Severity.LOW: "#0969da",
    Severity.INFO: "#6e7781",
}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.verdict{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.verdict.fail{background:#d1242f}.verdict.pass{background:#1a7f37}
.meta{color:#57606a;margin:4px 0 0}.meta code{color:#1f2328}
.cards{display:flex;flex-wrap:wrap;gap:16px;margin-top:16px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;flex:1 1 320px}
.card h3{font-size:14px;margin:0 0 8px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid #d8dee4}
th{background:#f6f8fa;font-weight:600}
td.msg{max-width:420px}td code,td.where{font-family:ui-monospace,monospace;font-size:12px;
word-break:break-all}
.sev{font-weight:600;text-transform:uppercase;font-size:12px}
.sev-critical{color:#8b0000}.sev-high{color:#d1242f}.sev-unknown{color:#8250df}
.sev-medium{color:#9a6700}.sev-low{color:#0969da}.sev-info{color:#6e7781}
.below{color:#57606a;font-size:11px;font-weight:400;text-transform:none}
td code.rule{white-space:nowrap;word-break:normal}
#filters[hidden]{display:none}
#filters{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0;align-items:center}
#filters label{font-size:13px;color:#57606a}
#filters select,#filters input{font:inherit;padding:2px 4px}
#shown{color:#57606a;font-size:13px}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}
footer{color:#57606a;font-size:12px;margin-top:24px}
"""

# Filters: each select narrows rows by a data-* attribute; the text box matches any cell.
_JS = """
(function(){
var f=document.getElementById('filters');if(!f)return;f.hidden=false;
var rows=Array.prototype.slice.call(document.querySelectorAll('#findings tbody tr'));
var sel=Array.prototype.slice.call(f.querySelectorAll('select'));
var q=document.getElementById('f-text');var shown=document.getElementById('shown');
function apply(){var n=0;var t=q.value.toLowerCase();
rows.forEach(function(r){var ok=sel.every(function(s){
return !s.value||r.getAttribute('data-'+s.name)===s.value;});
if(ok&&t&&r.textContent.toLowerCase().indexOf(t)<0)ok=false;
r.hidden=!ok;if(ok)n++;});shown.textContent=n+' of '+rows.length+' shown';}
sel.forEach(function(s){s.addEventListener('change',apply);});
q.addEventListener('input',apply);apply();})();
"""


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _e(text: object) -> str:
    """HTML-escape untrusted text; control characters become visible `\\xNN`."""
    raw = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    raw = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", raw)
    return _esc(raw, quote=True)


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def bar_chart(title: str, items: Iterable[tuple[str, int, str]], *, width: int = 520) -> str:
    """A horizontal bar chart as inline SVG: (label, value, colour) per bar."""
    data = [(label, value, color) for label, value, color in items]
    if not data:
        return f'<div class="card"><h3>{_e(title)}</h3><p>No active findings.</p></div>'
    top = max(v for _, v, _ in data) or 1
    label_w, bar_h, gap = 150, 18, 6
    height = len(data) * (bar_h + gap) + gap
    room = width - label_w - 50
    parts = [
        f'<div class="card"><h3>{_e(title)}</h3>',
        f'<svg role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
    ]
    for i, (label, value, color) in enumerate(data):
        y = gap + i * (bar_h + gap)
        w = max(round(room * value / top), 2)
        short = label if len(label) <= 22 else label[:21] + "\u2026"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 13}" text-anchor="end">{_e(short)}'
            f"<title>{_e(label)}</title></text>"
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" rx="3" '
            f'fill="{color}"><title>{_e(label)}: {value}</title></rect>'
            f'<text x="{label_w + w + 6}" y="{y + 13}">{value}</text>'
        )
    parts.append("</svg></div>")
    return "".join(parts)


def _where(f: Finding) -> str:
    parts = []
    if f.package:
        parts.append(f"{f.package}=={f.version}" if f.version else f.package)
    if f.location:
        parts.append(str(f.location))
    return _e(" ".join(parts)) if parts else "-"


def _row(report: Report, f: Finding) -> str:
    below = "" if report.is_failing(f) else '<br><span class="below">below fail_on</span>'
    fix = f"<code>{_e(f.fix)}</code>" if f.fix else "-"
    attrs = (
        f'data-severity="{_e(f.severity.value)}" data-rule="{_e(f.rule)}" '
        f'data-tier="{_e(f.tier or "")}" data-package="{_e(f.package or "")}" '
        f'data-fingerprint="{_e(f.fingerprint)}"'
    )
    return (
        f"<tr {attrs}>"
        f'<td class="sev sev-{_e(f.severity.value)}">{_e(f.severity.value)}{below}</td>'
        f'<td><code class="rule">{_e(f.rule)}</code></td>'
        f'<td class="where">{_where(f)}</td>'
        f"<td>{_e(f.tier or '-')}</td>"
        f'<td class="msg"><strong>{_e(f.title)}</strong><br>{_e(f.message)}</td>'
        f"<td>{fix}</td></tr>"
    )


def _select(name: str, label: str, values: Iterable[str]) -> str:
    opts = "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in sorted(set(values)) if v)
    return (
        f'<label>{_e(label)} <select name="{_e(name)}" id="f-{_e(name)}">'
        f'<option value="">all</option>{opts}</select></label>'
    )


def render(report: Report, *, color: bool = False) -> str:
    findings = report.sorted_findings()
    active = [f for f in findings if f.suppressed is None]
    suppressed = [f for f in findings if f.suppressed is not None]
    verdict = report.verdict.value
    counts = report.counts

    meta = [f"target <code>{_e(report.target)}</code>"]
    if report.commit:
        meta.append(f"commit <code>{_e(report.commit[:12])}</code>")
    if report.trust_source:
        meta.append(f"trust from {_e(report.trust_source)}")
    meta.append(f"started {_e(report.started.isoformat(timespec='seconds'))}")
    meta.append(f"{report.duration_s:.1f}s")
    meta.append(f"fails on {_e(report.fail_on.value)} and above")
    summary = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n) or "no findings"
    if suppressed:
        summary += f"; {len(suppressed)} suppressed"

    by_sev = [(s.value, counts[s.value], _COLORS[s]) for s in SEVERITY_ORDER if counts[s.value]]
    group = count_by(active, "tier")
    group.pop("(none)", None)
    for pkg, n in count_by(active, "package").items():
        if pkg != "(none)":
            group[pkg] = group.get(pkg, 0) + n
    by_group = [
        (name, n, "#0969da") for name, n in sorted(group.items(), key=lambda kv: (-kv[1], kv[0]))
    ][:15]

    body: list[str] = [
        "<header>",
        f"<h1>qeguard {_e(report.command)} "
        f'<span class="verdict {_e(verdict)}">{_e(verdict.upper())}</span></h1>',
        f'<p class="meta"><strong>{_e(summary)}</strong></p>',
        f'<p class="meta">{" · ".join(meta)}</p>',
        "</header>",
        '<section class="cards">',
        bar_chart("Findings by severity", by_sev),
        bar_chart("Findings by tier / package", by_group),
        "</section>",
    ]
    if report.tiers:
        body += [
            "<h2>Tiers</h2><table><thead><tr><th>Tier</th><th>Files</th><th>Signers seen</th>"
            "<th>Threshold</th><th>On change</th><th>Sequence</th><th>Expires</th></tr></thead>"
            "<tbody>"
        ]
        for t in report.tiers:
            status = "" if t.threshold_met else ' <span class="sev sev-high">not met</span>'
            need = f"{t.threshold}{status}" if t.threshold else "0 (none needed)"
            body.append(
                f"<tr><td>{_e(t.name)}</td><td>{t.files}</td>"
                f"<td>{_e(', '.join(t.signers) or '-')}</td>"
                f"<td>{need}</td><td>{_e(t.on_change)}</td>"
                f"<td>{_e(t.sequence if t.sequence is not None else '-')}</td>"
                f"<td>{_e(t.expires or '-')}</td></tr>"
            )
        body.append("</tbody></table>")
    if report.database is not None:
        db = report.database
        age = f", {db.age_days} days old" if db.age_days is not None else ""
        body.append(
            f'<p class="meta">Vulnerability data: {_e(db.name)} {_e(db.date or "")} '
            f"({_e(db.source)}{_e(age)}){' - ' + _e(db.note) if db.note else ''}</p>"
        )
    for o in report.overrides:
        body.append(
            f'<p class="meta"><strong>Override</strong> by {_e(o.who)} at {_e(o.when)}: '
            f"{_e(o.reason)}</p>"
        )
    body.append(f"<h2>Findings ({len(active)})</h2>")
    if active:
        body += [
            '<div id="filters" hidden>',
            _select("severity", "Severity", (f.severity.value for f in active)),
            _select("rule", "Rule", (f.rule for f in active)),
            _select("tier", "Tier", (f.tier or "" for f in active)),
            _select("package", "Package", (f.package or "" for f in active)),
            '<label>Text <input id="f-text" type="search"></label>',
            '<span id="shown"></span></div>',
            '<table id="findings"><thead><tr><th>Severity</th><th>Rule</th><th>Where</th>'
            "<th>Tier</th><th>Message</th><th>Fix</th></tr></thead><tbody>",
            *(_row(report, f) for f in active),
            "</tbody></table>",
        ]
    else:
        body.append("<p>No active findings.</p>")
    if suppressed:
        body += [
            f"<h2>Suppressed ({len(suppressed)})</h2>",
            '<table id="suppressed"><thead><tr><th>Rule</th><th>Where</th><th>Kind</th>'
            "<th>Reason</th><th>Expires</th></tr></thead><tbody>",
        ]
        for f in suppressed:
            assert f.suppressed is not None  # filtered above; narrows the type for mypy
            body.append(
                f'<tr data-fingerprint="{_e(f.fingerprint)}"><td><code>{_e(f.rule)}</code></td>'
                f'<td class="where">{_where(f)}</td><td>{_e(f.suppressed.kind)}</td>'
                f"<td>{_e(f.suppressed.reason)}</td><td>{_e(f.suppressed.expires or '-')}</td>"
                "</tr>"
            )
        body.append("</tbody></table>")
    body.append(
        f"<footer>qeguard {_e(report.tool_version)} · report schema qeguard.report/v1</footer>"
    )

    csp = (
        f"default-src 'none'; style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_JS)}; "
        "base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>qeguard {_e(report.command)}: {_e(verdict.upper())} - {_e(report.target)}</title>"
        f"<style>{_CSS}</style></head>\n<body><main>\n"
        + "\n".join(body)
        + f"\n</main><script>{_JS}</script></body></html>\n"
    )
