"""A single self-contained HTML page: summary and charts on top, a filterable findings table.

Everything is inline (CSS, SVG, a little JS) and a Content-Security-Policy forbids any
fetch, so the page can be archived as a CI artifact and opened offline.

The page stays fast with tens of thousands of findings: the table shows one page of
`PAGE` rows, and every finding is embedded once as compact JSON (a data block, never
executed) that the script filters and pages through. Without JS the page still shows the
summary, the first page of findings and a line saying how many more the JSON report has.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from html import escape as _esc
from typing import Any

from qeguard.render import DEFAULT_OPTIONS, RenderOptions
from qeguard.report import (
    OSV_URL,
    SEVERITY_ORDER,
    Finding,
    Report,
    Severity,
    advisory_url,
    count_by,
    counted,
)

PAGE = 200  # rows in the table at a time (and in the page without JS)

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
#pager[hidden]{display:none}#pager{margin:8px 0;display:flex;gap:8px;align-items:center}
#pager button{font:inherit;padding:2px 10px}
.note{color:#57606a;font-size:13px}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}
footer{color:#57606a;font-size:12px;margin-top:24px}
"""

# Filters and pages over the embedded data: each select narrows rows by a field, the text
# box matches any cell. Rows are built with textContent (never innerHTML), so nothing from
# the data is parsed as HTML; links go only to osv.dev, for ids of the advisory form.
_JS = """
(function(){
var f=document.getElementById('filters');var blk=document.getElementById('qeguard-data');
if(!f||!blk)return;
var d=JSON.parse(blk.textContent);var S=d.strings;var rows=d.rows;
var body=document.querySelector('#findings tbody');var shown=document.getElementById('shown');
var pager=document.getElementById('pager');var prev=document.getElementById('prev');
var next=document.getElementById('next');var q=document.getElementById('f-text');
var sel=Array.prototype.slice.call(f.querySelectorAll('select'));
var COL={severity:0,rule:1,tier:2,package:3};
var ID=/^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]{0,120}$/;
var page=0;var hits=rows;var PAGE=d.page;
function text(r){if(r.t===undefined){r.t=[S[r[0]],S[r[1]],S[r[2]],S[r[3]],S[r[4]],S[r[5]],
S[r[6]],r[7],r[10].join(' '),r[11]||''].join(' ').toLowerCase();}return r.t;}
function cell(tr,cls,t){var td=document.createElement('td');if(cls)td.className=cls;
if(t!==undefined)td.textContent=t;tr.appendChild(td);return td;}
function build(r){var tr=document.createElement('tr');var sev=S[r[0]];
tr.setAttribute('data-fingerprint',r[8]);
var td=cell(tr,'sev sev-'+sev,sev);if(!r[9]){td.appendChild(document.createElement('br'));
var b=document.createElement('span');b.className='below';
b.textContent=r[11]?'suppressed':'below fail_on';td.appendChild(b);}
var c=document.createElement('code');c.className='rule';c.textContent=S[r[1]];
cell(tr).appendChild(c);var ids=cell(tr,'ids');
r[10].forEach(function(id,i){if(i)ids.appendChild(document.createTextNode(', '));
if(ID.test(id)){var a=document.createElement('a');a.href=d.osv+encodeURIComponent(id);
a.rel='noopener noreferrer';a.textContent=id;ids.appendChild(a);}
else ids.appendChild(document.createTextNode(id));});if(!r[10].length)ids.textContent='-';
cell(tr,'where',r[7]||'-');cell(tr,'',S[r[2]]||'-');var m=cell(tr,'msg');
var st=document.createElement('strong');st.textContent=S[r[4]];m.appendChild(st);
m.appendChild(document.createElement('br'));m.appendChild(document.createTextNode(S[r[5]]));
if(r[11]){m.appendChild(document.createElement('br'));
m.appendChild(document.createTextNode('suppressed: '+r[11]));}
var fx=cell(tr);if(S[r[6]]){var k=document.createElement('code');k.textContent=S[r[6]];
fx.appendChild(k);}else fx.textContent='-';return tr;}
function draw(){var n=hits.length;var pages=Math.max(1,Math.ceil(n/PAGE));
if(page>=pages)page=pages-1;var a=page*PAGE;var b=Math.min(n,a+PAGE);
var frag=document.createDocumentFragment();for(var i=a;i<b;i++)frag.appendChild(build(hits[i]));
body.textContent='';body.appendChild(frag);
shown.textContent=n<=PAGE?n+' of '+rows.length+' shown':(a+1)+'-'+b+' of '+n+
' shown (page '+(page+1)+' of '+pages+'), '+rows.length+' in all';
pager.hidden=n<=PAGE;prev.disabled=page===0;next.disabled=page>=pages-1;}
function apply(){var t=q.value.toLowerCase();var want=sel.map(function(s){return s.value;});
hits=rows.filter(function(r){for(var i=0;i<sel.length;i++){var v=want[i];if(!v)continue;
var s=sel[i];if(s.name==='status'){if((v==='active')!==!r[11])return false;}
else if(S[r[COL[s.name]]]!==v)return false;}return !t||text(r).indexOf(t)>=0;});
page=0;draw();}
sel.forEach(function(s){s.addEventListener('change',apply);});
q.addEventListener('input',apply);
prev.addEventListener('click',function(){page--;draw();});
next.addEventListener('click',function(){page++;draw();});
f.hidden=false;apply();var h=document.documentElement;h.setAttribute('data-ready',rows.length);
h.setAttribute('data-ready-ms',Math.round(performance.now()));})();
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


def _plain(text: object) -> str:
    """Untrusted text for the JSON data block: valid Unicode, control characters visible."""
    raw = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", raw)


def _where_text(f: Finding) -> str:
    parts = []
    if f.package:
        parts.append(f"{f.package}=={f.version}" if f.version else f.package)
    places = f.locations
    if places:
        shown = ", ".join(str(p) for p in places[:3])
        parts.append(shown + (f" +{len(places) - 3} more" if len(places) > 3 else ""))
    return " ".join(parts)


def _where(f: Finding) -> str:
    return _e(_where_text(f)) if (f.package or f.location) else "-"


def _ids(f: Finding) -> list[str]:
    ids = list(f.advisory_ids)
    return ids + [a for a in f.aliases if a not in ids] if ids else []


def _id_links(f: Finding) -> str:
    links = []
    for i in _ids(f):
        url = advisory_url(i)
        links.append(f'<a href="{_e(url)}" rel="noopener noreferrer">{_e(i)}</a>' if url else _e(i))
    return ", ".join(links) or "-"


def _row(report: Report, f: Finding) -> str:
    below = "" if report.is_failing(f) else '<br><span class="below">below fail_on</span>'
    fix = f"<code>{_e(f.fix)}</code>" if f.fix else "-"
    return (
        f'<tr data-fingerprint="{_e(f.fingerprint)}">'
        f'<td class="sev sev-{_e(f.severity.value)}">{_e(f.severity.value)}{below}</td>'
        f'<td><code class="rule">{_e(f.rule)}</code></td>'
        f'<td class="ids">{_id_links(f)}</td>'
        f'<td class="where">{_where(f)}</td>'
        f"<td>{_e(f.tier or '-')}</td>"
        f'<td class="msg"><strong>{_e(f.title)}</strong><br>{_e(f.message)}</td>'
        f"<td>{fix}</td></tr>"
    )


def data_block(report: Report, findings: list[Finding]) -> str:
    """Every finding as compact JSON rows over a table of repeated strings."""
    strings: list[str] = []
    index: dict[str, int] = {}

    def s(text: str | None) -> int:
        key = _plain(text or "")
        n = index.get(key)
        if n is None:
            n = index[key] = len(strings)
            strings.append(key)
        return n

    rows: list[list[Any]] = []
    for f in findings:
        sup = f.suppressed
        rows.append(
            [
                s(f.severity.value),
                s(f.rule),
                s(f.tier),
                s(f.package),
                s(f.title),
                s(f.message),
                s(f.fix),
                _plain(_where_text(f)),
                f.fingerprint,
                1 if report.is_failing(f) else 0,
                [_plain(i) for i in _ids(f)],
                _plain(f"{sup.kind}: {sup.reason}") if sup else None,
            ]
        )
    data = {"page": PAGE, "osv": OSV_URL, "strings": strings, "rows": rows}
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    # A data block ends at the first "</script"; escaping <, > and & keeps it inert.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="qeguard-data">{text}</script>'


def _select(name: str, label: str, values: Iterable[str], selected: str = "") -> str:
    opts = "".join(
        f'<option value="{_e(v)}"{" selected" if v == selected else ""}>{_e(v)}</option>'
        for v in sorted(set(values))
        if v
    )
    return (
        f'<label>{_e(label)} <select name="{_e(name)}" id="f-{_e(name)}">'
        f'<option value="">all</option>{opts}</select></label>'
    )


def _checked(report: Report) -> str | None:
    parts = []
    if report.tiers:
        files = sum(t.files for t in report.tiers)
        parts.append(f"{counted(len(report.tiers), 'tier')} ({counted(files, 'protected file')})")
    inputs = report.inputs
    if inputs is not None:
        names = ", ".join(f"<code>{_e(p)}</code>" for p in inputs.files)
        parts.append(
            f"{counted(len(inputs.files), 'dependency file')}{': ' + names if names else ''}"
        )
        parts.append(
            f"{counted(inputs.packages, 'package')} ({counted(inputs.dependencies, 'declaration')})"
        )
        if inputs.services:
            parts.append(f"services: {_e(', '.join(inputs.services))}")
    db = report.database
    if db is not None:
        bits = [_e(db.source)]
        if db.age_days is not None:
            bits.append(f"{db.age_days} days old")
        if db.records is not None:
            bits.append(f"{db.records} records")
        note = f" - {_e(db.note)}" if db.note else ""
        parts.append(
            f"vulnerability data: {_e(db.name)} {_e(db.date or '')} ({', '.join(bits)}){note}"
        )
    return '<p class="meta">Checked: ' + " · ".join(parts) + "</p>" if parts else None


def render(report: Report, options: RenderOptions = DEFAULT_OPTIONS) -> str:
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
    ]
    checked = _checked(report)
    if checked:
        body.append(checked)
    applied = [x for x in report.fixes if x.applied]
    if applied:
        body.append(
            f'<p class="meta">{len(applied)} fixes applied; the findings and verdict are '
            "what is left.</p>"
        )
    body += [
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
    for o in report.overrides:
        body.append(
            f'<p class="meta"><strong>Override</strong> by {_e(o.who)} at {_e(o.when)}: '
            f"{_e(o.reason)}</p>"
        )
    if report.fixes:
        body.append(
            "<h2>Fixes</h2><table><thead><tr><th>Package</th><th>Version</th><th>Fixed in</th>"
            "<th>File</th><th>Status</th></tr></thead><tbody>"
        )
        for x in report.fixes:
            body.append(
                f"<tr><td>{_e(x.package)}</td><td>{_e(x.version or '-')}</td>"
                f"<td>{_e(x.fixed)}</td><td>{_e(x.path or '-')}</td>"
                f"<td>{'applied' if x.applied else 'suggested'}</td></tr>"
            )
        body.append("</tbody></table>")
    body.append(f"<h2>Findings ({len(active)})</h2>")
    if findings:
        first = active[:PAGE]
        body += [
            '<div id="filters" hidden>',
            _select("status", "Status", ("active", "suppressed"), selected="active"),
            _select("severity", "Severity", (f.severity.value for f in findings)),
            _select("rule", "Rule", (f.rule for f in findings)),
            _select("tier", "Tier", (f.tier or "" for f in findings)),
            _select("package", "Package", (f.package or "" for f in findings)),
            '<label>Text <input id="f-text" type="search"></label>',
            '<span id="shown"></span></div>',
            '<div id="pager" hidden><button type="button" id="prev">previous</button>'
            '<button type="button" id="next">next</button></div>',
            '<table id="findings"><thead><tr><th>Severity</th><th>Rule</th><th>ID</th>'
            "<th>Where</th><th>Tier</th><th>Message</th><th>Fix</th></tr></thead><tbody>",
            *(_row(report, f) for f in first),
            "</tbody></table>",
        ]
        if len(active) > len(first):
            body.append(
                f'<p class="note" id="cut">The table shows {PAGE} findings at a time; '
                f"{len(active) - len(first)} more are in this page's data (use the pager) "
                "and in the JSON report.</p>"
            )
    if not active:
        body.append("<p>No active findings.</p>")
    if suppressed:
        body += [
            f"<h2>Suppressed ({len(suppressed)})</h2>",
            '<table id="suppressed"><thead><tr><th>Rule</th><th>ID</th><th>Where</th>'
            "<th>Kind</th><th>Reason</th><th>Expires</th></tr></thead><tbody>",
        ]
        for f in suppressed[:PAGE]:
            assert f.suppressed is not None  # filtered above; narrows the type for mypy
            body.append(
                f'<tr data-fingerprint="{_e(f.fingerprint)}"><td><code>{_e(f.rule)}</code></td>'
                f'<td class="ids">{_id_links(f)}</td>'
                f'<td class="where">{_where(f)}</td><td>{_e(f.suppressed.kind)}</td>'
                f"<td>{_e(f.suppressed.reason)}</td><td>{_e(f.suppressed.expires or '-')}</td>"
                "</tr>"
            )
        body.append("</tbody></table>")
        if len(suppressed) > PAGE:
            body.append(
                f'<p class="note">{len(suppressed) - PAGE} more suppressed findings: choose '
                "Status &quot;suppressed&quot; above, or see the JSON report.</p>"
            )
    body.append(
        f"<footer>qeguard {_e(report.tool_version)} · report schema qeguard.report/v1</footer>"
    )
    if findings:
        body.append(data_block(report, findings))

    csp = (
        f"default-src 'none'; style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_JS)}; "
        "base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>qeguard {_e(report.command)}: {_e(verdict.upper())} - {_e(report.target)}</title>"
        f"<style>{_CSS}</style></head>\n<body><main>\n"
        + "\n".join(body)
        + f"\n</main><script>{_JS}</script></body></html>\n"
    )
