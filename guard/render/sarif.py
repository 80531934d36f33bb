"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.

Choices made for what GitHub code scanning does with a SARIF run:

- **A rule per advisory.** Code scanning titles an alert with its rule's short
  description, files it under the rule in the "Rule" filter, shows the rule's help beside
  it, and reads `security-severity` only from the rule. With one QG-DEP-VULN rule every
  vulnerability would be titled "A dependency has a known vulnerability" and rated alike;
  a rule per advisory (id `PYSEC-2018-28`, its summary as title, aliases and the osv.dev
  link in help and `helpUri`) gives each alert its own name, link and severity, as other
  dependency scanners' SARIF does. The result keeps `properties.qeguard-rule`.
- **Severity on the rule, consistent with qeguard's.** A rule's `security-severity` is the
  score of the severity qeguard gave its findings. A finding of another severity than its
  rule's usual one (an outer-tier `warn` change is `low`, not `high`) gets a rule variant
  `QG-INT-MODIFIED/low`, so code scanning rates it as qeguard does and does not fail its
  default check on it. Rules that are not about security (outdated pins, analysis errors)
  and `info` findings carry no `security` tag and no `security-severity`.
- **At most 25,000 results** (code scanning rejects more): the most severe are kept and a
  tool notification plus `run.properties.leftOut` say how many were left out.
- **No automationDetails by default**, so the upload step's `category:` applies; with
  `--sarif-category` the run names its own category.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from qeguard.render import DEFAULT_OPTIONS, RenderOptions
from qeguard.report import Finding, Report, Severity, advisory_url, shorten
from qeguard.rules import Family, RuleId, family
from qeguard.rules import rule as lookup_rule

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# v2: fingerprints are computed from the finding's identity (see report.schema.json).
FINGERPRINT_KEY = "qeguard/v2"
SRCROOT = "%SRCROOT%"
# Code scanning's limits per run: results, and locations it keeps per result.
MAX_RESULTS = 25_000
MAX_RELATED = 100

POLICY_FILE = ".qeguard/policy.toml"
TRUST_FILE = ".qeguard/trust.toml"

# The score of each qeguard severity, inside GitHub's bands (critical >= 9.0, high >= 7.0,
# medium >= 4.0, low > 0): unknown ranks with high in qeguard, so it is high here too.
SEVERITY_SCORE = {
    Severity.CRITICAL: 9.5,
    Severity.HIGH: 8.0,
    Severity.UNKNOWN: 7.0,
    Severity.MEDIUM: 5.5,
    Severity.LOW: 3.0,
    Severity.INFO: 0.0,
}


def band(score: float) -> Severity:
    """The severity GitHub shows for a `security-severity` score."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return Severity.INFO


def _same_band(a: Severity, b: Severity) -> bool:
    return a.rank == b.rank and (a is b or {a, b} == {Severity.HIGH, Severity.UNKNOWN})


def _safe_relative(path: str) -> bool:
    norm = posixpath.normpath(path)
    return (
        bool(path)
        and not path.startswith("/")
        and "\\" not in path
        and norm != ".."
        and not norm.startswith("../")
        and not (len(path) > 1 and path[1] == ":")
    )


def artifact(finding: Finding, report: Report | None = None) -> tuple[str | None, int | None]:
    """The repo-relative file a finding points at, and its line when known; no file when
    nothing in the repository governs it.

    Code scanning drops results without a location, so findings about an installed
    package, a tier as a whole or an unsafe manifest entry point at the file that
    governs them: the tier's manifest list, the trust file or the policy. A dependency
    scan alone may have read no file at all (`deps --env` without a policy): then there is
    none, rather than a policy file that does not exist.
    """
    loc = finding.location
    if loc is not None and _safe_relative(loc.path) and not _names_no_file(loc.path):
        return posixpath.normpath(loc.path), loc.line
    if finding.tier:
        return f".qeguard/manifests/{finding.tier}.list", None
    if family(finding.rule) is Family.TRUST:
        return TRUST_FILE, None
    source = finding.details.get("source")
    if isinstance(source, str) and _safe_relative(source):
        return posixpath.normpath(source), None
    if report is not None and not report.tiers:
        # A dependency scan alone may run without a policy file: point at what it read.
        files = report.inputs.files if report.inputs is not None else ()
        first = next((f for f in files if _safe_relative(f)), None)
        return (posixpath.normpath(first) if first else None), None
    return POLICY_FILE, None


def _names_no_file(path: str) -> bool:
    # A dependency's source in parentheses, e.g. "(installed environment)", is not a file.
    return path.startswith("(")


def _subject(finding: Finding) -> str:
    """Where a SARIF result with no file points: code scanning refuses a result without a
    location, so it names what the finding is about in parentheses, claiming no file."""
    if finding.location is not None and _names_no_file(finding.location.path):
        return finding.location.path
    return "(vulnerability database)" if finding.rule == RuleId.DEP_DB else "(no file)"


def _uri(path: str) -> str:
    # Percent-encode per RFC 3986; bytes (not str) so invalid UTF-8 survives as %XX.
    return quote(path.encode("utf-8", "surrogateescape"), safe="/-._~")


def level(report: Report, finding: Finding) -> str:
    """`error` if the finding would fail the report (suppressed or not); `note` for info;
    `warning` for everything reported below the threshold (a warn-tier change)."""
    return _level(report, finding.severity)


def _level(report: Report, severity: Severity) -> str:
    if severity.rank >= report.fail_on.rank:
        return "error"
    return "note" if severity is Severity.INFO else "warning"


def _base_id(finding: Finding) -> str:
    """The rule the result files under: its advisory for a vulnerability, else its rule."""
    if finding.rule == RuleId.DEP_VULN and finding.advisory_ids:
        return finding.advisory_ids[0]
    return finding.rule


def _cvss_score(vector: object) -> float | None:
    if not isinstance(vector, str) or not vector.startswith("CVSS:"):
        return None
    from cvss import CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    try:
        if vector.startswith("CVSS:4"):
            return float(CVSS4(vector).base_score)
        return float(CVSS3(vector).base_score)
    except (CVSSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _score(severity: Severity, sample: Finding) -> float:
    """The advisory's own CVSS base score when it agrees with qeguard's severity, else the
    severity's score: the alert must never be rated differently from the finding."""
    if sample.rule == RuleId.DEP_VULN:
        score = _cvss_score(sample.details.get("cvss"))
        if score is not None and _same_band(band(score), severity):
            return score
    return SEVERITY_SCORE[severity]


def _md(text: str) -> str:
    from qeguard.render.markdown import escape

    return escape(text)


class _Rules:
    """The run's rule descriptors, one per (base rule, severity) in first-seen order."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.ids: dict[tuple[str, Severity], str] = {}
        self.index: dict[str, int] = {}
        self.descriptors: list[dict[str, Any]] = []
        self._default: dict[str, Severity] = {}

    def add(self, finding: Finding) -> tuple[str, int]:
        """The rule id and index for a result, creating its descriptor on first use."""
        key = (_base_id(finding), finding.severity)
        sid = self.ids.get(key)
        if sid is None:
            sid = self._variant(key[0], finding)
            if sid not in self.index:
                self.index[sid] = len(self.descriptors)
                self.descriptors.append(self._descriptor(sid, finding))
            self.ids[key] = sid
        return sid, self.index[sid]

    def _variant(self, base: str, f: Finding) -> str:
        r = lookup_rule(f.rule)
        if not r.security:
            return base  # no security-severity: GitHub rates each result by its level
        if base != f.rule:
            # An advisory: its usual severity is the first (most severe) one seen.
            default = self._default.setdefault(base, f.severity)
        else:
            default = band(r.security_severity)
        return base if _same_band(default, f.severity) else f"{base}/{f.severity.value}"

    def _descriptor(self, sid: str, f: Finding) -> dict[str, Any]:
        r = lookup_rule(f.rule)
        sev = f.severity
        security = r.security and sev is not Severity.INFO
        area = "supply-chain" if family(r.id) in (Family.DEPENDENCY, Family.SAST) else "integrity"
        tags = ["security", area] if security else [area, "maintenance"]
        props: dict[str, Any] = {"tags": tags, "qeguard-rule": r.id}
        if security:
            props["severity"] = sev.value
            props["security-severity"] = f"{_score(sev, f):.1f}"
        out: dict[str, Any] = {"id": sid, "name": r.name}
        if sid.split("/")[0] != f.rule:
            ids = f.advisory_ids
            url = advisory_url(ids[0])
            summary = f.message or f.title
            aliases = [a for a in f.aliases if a != ids[0]]
            pkg = f.package or "a dependency"
            out["shortDescription"] = {"text": shorten(f"{ids[0]}: {summary}", 200)}
            out["fullDescription"] = {"text": shorten(summary, 1000)}
            fixed = ", ".join(f.fix_versions) or "no fixed release known"
            lines = [f"{ids[0]} affects {pkg}."]
            md = [f"**{_md(ids[0])}** affects {_md(pkg)}.", ""]
            if aliases:
                lines.append(f"Aliases: {', '.join(aliases)}.")
                md += [f"Aliases: {', '.join(_link(a) for a in aliases)}", ""]
            lines.append(f"Fixed in: {fixed}.")
            md += [f"Fixed in: {_md(fixed)}", "", _md(shorten(summary, 2000)), ""]
            if url:
                lines.append(url)
                md.append(f"Details: {_link(ids[0])}")
                out["helpUri"] = url
            out["help"] = {"text": " ".join(lines), "markdown": "\n".join(md)}
            tags.append("vulnerability")
            props["aliases"] = aliases
        else:
            help_text = r.help or r.full
            out["shortDescription"] = {"text": r.short}
            out["fullDescription"] = {"text": r.full}
            out["help"] = {
                "text": help_text,
                "markdown": f"**{r.short}**\n\n{r.full}\n\n{help_text}",
            }
        out["defaultConfiguration"] = {"level": _level(self.report, sev)}
        out["properties"] = props
        return out


def _link(advisory_id: str) -> str:
    url = advisory_url(advisory_id)
    return f"[{_md(advisory_id)}]({url})" if url else _md(advisory_id)


def _message(finding: Finding) -> str:
    text = finding.message or finding.title
    ids = finding.advisory_ids
    if ids and ids[0] not in text:
        aliases = [a for a in finding.aliases if a != ids[0]]
        named = f"{ids[0]} ({', '.join(aliases)})" if aliases else ids[0]
        text = f"{named}: {text}"
    if finding.package:
        pkg = f"{finding.package}=={finding.version}" if finding.version else finding.package
        if pkg not in text:
            text = f"{pkg}: {text}"
    loc = finding.location
    if loc is not None and not _safe_relative(loc.path):
        text = f"{text} (path {loc.path!r})"
    if finding.also_at:
        shown = ", ".join(str(a) for a in finding.also_at[:5])
        more = f" and {len(finding.also_at) - 5} more" if len(finding.also_at) > 5 else ""
        text = f"{text}\nAlso declared in: {shown}{more}"
    if finding.fix:
        text = f"{text}\nFix: {finding.fix}"
    return text


def _physical(path: str, line: int | None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(path), "uriBaseId": SRCROOT}}
    if line is not None and line >= 1:
        physical["region"] = {"startLine": line}
    return physical


def _result(report: Report, finding: Finding, rule_id: str, index: int) -> dict[str, Any]:
    path, line = artifact(finding, report)
    if path is None:
        path = _subject(finding)
    props: dict[str, Any] = {"severity": finding.severity.value, "qeguard-rule": finding.rule}
    for key in ("tier", "package", "version", "fix"):
        value = getattr(finding, key)
        if value is not None:
            props[key] = value
    if finding.advisory_ids:
        props["advisories"] = list(finding.advisory_ids)
        props["aliases"] = list(finding.aliases)
        props["fixVersions"] = list(finding.fix_versions)
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "ruleIndex": index,
        "level": level(report, finding),
        "message": {"text": _message(finding)},
        "locations": [{"physicalLocation": _physical(path, line)}],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
        "properties": props,
    }
    related = [a for a in finding.also_at if _safe_relative(a.path)][:MAX_RELATED]
    if related:
        result["relatedLocations"] = [
            {
                "id": i,
                "physicalLocation": _physical(posixpath.normpath(a.path), a.line),
                "message": {"text": "also declared here"},
            }
            for i, a in enumerate(related, 1)
        ]
    if finding.suppressed is not None:
        sup: dict[str, Any] = {
            # `inSource` would claim a comment in the file; ignores live in the policy.
            "kind": "external",
            "status": "accepted",
            "justification": finding.suppressed.reason,
        }
        if finding.suppressed.expires:
            sup["properties"] = {"expires": finding.suppressed.expires}
        result["suppressions"] = [sup]
    return result


def _utc(ts: datetime) -> str:
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _artifacts(files: Iterable[str]) -> list[dict[str, Any]]:
    return [
        {"location": {"uri": _uri(p), "uriBaseId": SRCROOT}, "roles": ["analysisTarget"]}
        for p in files
        if _safe_relative(p)
    ]


def to_sarif(report: Report, options: RenderOptions = DEFAULT_OPTIONS) -> dict[str, Any]:
    findings = report.sorted_findings()  # active, most severe first: what a cap keeps
    kept = findings[:MAX_RESULTS]
    left_out = len(findings) - len(kept)
    rules = _Rules(report)
    results = []
    for f in kept:
        rule_id, index = rules.add(f)
        results.append(_result(report, f, rule_id, index))
    invocation: dict[str, Any] = {
        "executionSuccessful": True,
        "startTimeUtc": _utc(report.started),
        "endTimeUtc": _utc(report.started + timedelta(seconds=report.duration_s)),
    }
    if left_out:
        invocation["toolExecutionNotifications"] = [
            {
                "level": "warning",
                "message": {
                    "text": f"{left_out} of {len(findings)} results left out: code scanning "
                    f"accepts at most {MAX_RESULTS} per run, so the most severe were kept. "
                    "The JSON report lists every finding."
                },
                "properties": {"leftOut": left_out, "total": len(findings)},
            }
        ]
    properties: dict[str, Any] = {
        "verdict": report.verdict.value,
        "failOn": report.fail_on.value,
        "counts": report.counts,
        "commit": report.commit,
        "trustSource": report.trust_source,
        "leftOut": left_out,
        "inputs": report.inputs.to_dict() if report.inputs else None,
        "database": report.database.to_dict() if report.database else None,
        "fixes": [x.to_dict() for x in report.fixes],
    }
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "qeguard",
                "version": report.tool_version,
                "semanticVersion": report.tool_version,
                "rules": rules.descriptors,
            }
        },
        "invocations": [invocation],
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": properties,
    }
    if options.sarif_category:
        # The category is everything before the last slash of the id; the upload step's
        # `category:` is ignored when this is set, so it is set only when asked.
        run["automationDetails"] = {"id": options.sarif_category.rstrip("/") + "/"}
    if report.inputs and report.inputs.files:
        run["artifacts"] = _artifacts(report.inputs.files)
    if report.target.startswith("/"):
        base = report.target if report.target.endswith("/") else report.target + "/"
        run["originalUriBaseIds"] = {SRCROOT: {"uri": "file://" + _uri(base)}}
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def render(report: Report, options: RenderOptions = DEFAULT_OPTIONS) -> str:
    return json.dumps(to_sarif(report, options), indent=1, ensure_ascii=True) + "\n"
