"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers."""

from __future__ import annotations

import json
import posixpath
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from qeguard.report import Finding, Report, Severity
from qeguard.rules import Family, family
from qeguard.rules import rule as lookup_rule

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "qeguard/v1"
SRCROOT = "%SRCROOT%"

POLICY_FILE = ".qeguard/policy.toml"
TRUST_FILE = ".qeguard/trust.toml"

# Used for a result's own `security-severity` when it is more specific than its rule's
# (one QG-DEP-VULN rule covers advisories of every severity).
_SEVERITY_SCORE = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.UNKNOWN: "7.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


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


def artifact(finding: Finding, report: Report | None = None) -> tuple[str, int | None]:
    """The repo-relative file a finding points at, and its line when known.

    Code scanning drops results without a location, so findings about an installed
    package, a tier as a whole or an unsafe manifest entry point at the file that
    governs them: the tier's manifest list, the trust file or the policy.
    """
    loc = finding.location
    if loc is not None and _safe_relative(loc.path):
        return posixpath.normpath(loc.path), loc.line
    if finding.tier:
        return f".qeguard/manifests/{finding.tier}.list", None
    if family(finding.rule) is Family.TRUST:
        return TRUST_FILE, None
    source = finding.details.get("source")
    if isinstance(source, str) and _safe_relative(source):
        return posixpath.normpath(source), None
    # A dependency scan alone may run without a policy file: point at what it read.
    inputs = report.inputs if report is not None and not report.tiers else None
    if inputs is not None and inputs.files and _safe_relative(inputs.files[0]):
        return posixpath.normpath(inputs.files[0]), None
    return POLICY_FILE, None


def _uri(path: str) -> str:
    # Percent-encode per RFC 3986; bytes (not str) so invalid UTF-8 survives as %XX.
    return quote(path.encode("utf-8", "surrogateescape"), safe="/-._~")


def level(report: Report, finding: Finding) -> str:
    """`error` if the finding would fail the report (suppressed or not), else warning/note."""
    if finding.severity.rank >= report.fail_on.rank:
        return "error"
    return "warning" if finding.severity.rank >= Severity.MEDIUM.rank else "note"


def _rule_descriptor(rule_id: str) -> dict[str, Any]:
    r = lookup_rule(rule_id)
    help_text = r.help or r.full
    return {
        "id": r.id,
        "name": r.name,
        "shortDescription": {"text": r.short},
        "fullDescription": {"text": r.full},
        "help": {
            "text": help_text,
            "markdown": f"**{r.short}**\n\n{r.full}\n\n{help_text}",
        },
        "defaultConfiguration": {"level": "error" if r.security_severity >= 7.0 else "warning"},
        "properties": {
            "security-severity": f"{r.security_severity:.1f}",
            "tags": [
                "security",
                "supply-chain" if family(r.id) is Family.DEPENDENCY else "integrity",
            ],
        },
    }


def _message(finding: Finding) -> str:
    text = finding.message or finding.title
    if finding.package:
        pkg = f"{finding.package}=={finding.version}" if finding.version else finding.package
        if pkg not in text:
            text = f"{pkg}: {text}"
    loc = finding.location
    if loc is not None and not _safe_relative(loc.path):
        text = f"{text} (path {loc.path!r})"
    if finding.fix:
        text = f"{text}\nFix: {finding.fix}"
    return text


def _result(report: Report, finding: Finding, index: int) -> dict[str, Any]:
    path, line = artifact(finding, report)
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(path), "uriBaseId": SRCROOT}}
    if line is not None and line >= 1:
        physical["region"] = {"startLine": line}
    props: dict[str, Any] = {
        "severity": finding.severity.value,
        "security-severity": _SEVERITY_SCORE[finding.severity],
    }
    for key in ("tier", "package", "version"):
        value = getattr(finding, key)
        if value is not None:
            props[key] = value
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": index,
        "level": level(report, finding),
        "message": {"text": _message(finding)},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
        "properties": props,
    }
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


def to_sarif(report: Report) -> dict[str, Any]:
    findings = report.sorted_findings()
    rule_ids = sorted({f.rule for f in findings})
    index = {rid: i for i, rid in enumerate(rule_ids)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "qeguard",
                "version": report.tool_version,
                "semanticVersion": report.tool_version,
                "rules": [_rule_descriptor(rid) for rid in rule_ids],
            }
        },
        "automationDetails": {"id": f"qeguard/{report.command}/"},
        "invocations": [
            {
                "executionSuccessful": True,
                "startTimeUtc": _utc(report.started),
                "endTimeUtc": _utc(report.started + timedelta(seconds=report.duration_s)),
            }
        ],
        "results": [_result(report, f, index[f.rule]) for f in findings],
        "columnKind": "unicodeCodePoints",
        "properties": {
            "verdict": report.verdict.value,
            "failOn": report.fail_on.value,
            "counts": report.counts,
            "commit": report.commit,
            "trustSource": report.trust_source,
        },
    }
    if report.target.startswith("/"):
        base = report.target if report.target.endswith("/") else report.target + "/"
        run["originalUriBaseIds"] = {SRCROOT: {"uri": "file://" + _uri(base)}}
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def render(report: Report, *, color: bool = False) -> str:
    return json.dumps(to_sarif(report), indent=2, ensure_ascii=True) + "\n"
