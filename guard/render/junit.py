"""JUnit XML for CI dashboards: a test case per tier (integrity), per package
(dependencies) and per file (static analysis).

A case fails when it holds a finding at or above `fail_on`; its failure names the rules and
advisory ids, and lists each finding with its fingerprint. Findings below the threshold
and suppressed ones go to the case's `system-out`, so every finding appears once and the
dashboard's red matches the run's verdict. A check that did not run (no dependency scan,
no `--sast`, no online lookup) is a skipped case, never a passed one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name
from qeguard.render import DEFAULT_OPTIONS, RenderOptions
from qeguard.report import Finding, Report, advisory_url, counted
from qeguard.rules import Family, family

# XML 1.0 cannot carry most control characters at all, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
IDS_IN_MESSAGE = 10


def xml_text(text: str) -> str:
    """Text that ElementTree can serialise into well-formed XML 1.0."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def area(rule_id: str) -> str:
    fam = family(rule_id)
    if fam is Family.SAST:
        return "sast"
    return fam.area if fam is not None else "other"


def _describe(f: Finding) -> str:
    where = []
    if f.package:
        where.append(f"{f.package}=={f.version}" if f.version else f.package)
    if f.locations:
        where.append(", ".join(str(loc) for loc in f.locations))
    if f.tier:
        where.append(f"tier {f.tier}")
    ids = list(f.advisory_ids)
    named = ""
    if ids:
        aliases = [a for a in f.aliases if a not in ids]
        url = advisory_url(ids[0])
        named = " ".join(ids) + (f" (aliases {', '.join(aliases)})" if aliases else "")
        named += f" {url}" if url else ""
        named = f" {named}"
    line = f"[{f.severity.value}] {f.rule}{named} {' '.join(where) or '-'}: {f.message or f.title}"
    if f.fix:
        line += f" (fix: {f.fix})"
    if f.suppressed is not None:
        line += f" [suppressed, {f.suppressed.kind}: {f.suppressed.reason}]"
    return f"{line} fingerprint={f.fingerprint}"


@dataclass(kw_only=True, slots=True)
class _Case:
    name: str
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None


def _ids(findings: list[Finding]) -> list[str]:
    """Rule ids and advisory ids, each once, in order: what a failure is about."""
    seen: dict[str, None] = {}
    for f in findings:
        for i in f.advisory_ids[:1] or (f.rule,):
            seen.setdefault(i, None)
    return list(seen)


def _cases(report: Report) -> dict[str, list[_Case]]:
    """Test cases per suite, in display order."""
    findings = report.sorted_findings()
    ran_integrity = report.command in ("verify", "ci") or bool(report.tiers)
    ran_deps = report.inputs is not None or report.database is not None
    services = report.inputs.services if report.inputs else ()
    ran_sast = "bandit" in services
    for f in findings:
        ran_integrity |= area(f.rule) == "integrity"
        ran_deps |= area(f.rule) == "dependencies"
        ran_sast |= area(f.rule) == "sast"

    suites: dict[str, list[_Case]] = {"integrity": [], "dependencies": [], "sast": []}
    if ran_integrity:
        tiers = {t.name: _Case(name=f"tier {t.name}") for t in report.tiers}
        repo = _Case(name="trust and signatures")
        for f in findings:
            if area(f.rule) != "integrity":
                continue
            if f.tier:
                tiers.setdefault(f.tier, _Case(name=f"tier {f.tier}")).findings.append(f)
            else:
                repo.findings.append(f)
        suites["integrity"] = [repo, *tiers.values()]
    else:
        suites["integrity"] = [_Case(name="integrity", skipped=f"not run by {report.command}")]

    if ran_deps:
        packages: dict[tuple[str, str], _Case] = {}
        data = _Case(name="dependency data and policy")
        for f in findings:
            if area(f.rule) != "dependencies":
                continue
            if f.package:
                key = (canonicalize_name(f.package), f.version or "")
                name = f"{f.package} {f.version}" if f.version else f.package
                packages.setdefault(key, _Case(name=name)).findings.append(f)
            else:
                data.findings.append(f)
        cases = [data, *sorted(packages.values(), key=lambda c: c.name.lower())]
        checked = report.inputs.packages if report.inputs else 0
        clean = checked - sum(1 for k in packages if k[1])
        if clean > 0:
            cases.append(_Case(name=f"{clean} other packages checked without findings"))
        db = report.database
        if db is not None and db.source == "offline":
            cases.append(
                _Case(
                    name="online vulnerability lookup",
                    skipped="not run: the offline database was used (pass --online)",
                )
            )
        suites["dependencies"] = cases
    else:
        suites["dependencies"] = [
            _Case(name="dependency scan", skipped=f"not run by {report.command}")
        ]

    if ran_sast:
        files: dict[str, _Case] = {}
        for f in findings:
            if area(f.rule) == "sast":
                path = f.location.path if f.location else "-"
                files.setdefault(path, _Case(name=path)).findings.append(f)
        suites["sast"] = list(files.values()) or [_Case(name="bandit")]
    else:
        suites["sast"] = [_Case(name="bandit", skipped="not run: pass --sast")]
    other = [f for f in findings if area(f.rule) == "other"]
    if other:
        suites["other"] = [_Case(name="other checks", findings=other)]
    return suites


def render(report: Report, options: RenderOptions = DEFAULT_OPTIONS) -> str:
    suites = _cases(report)
    root = ET.Element("testsuites", name="qeguard")
    n_cases = sum(len(c) for c in suites.values())
    time_each = report.duration_s / max(n_cases, 1)
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    inputs = report.inputs
    db = report.database
    for suite_name, cases in suites.items():
        suite = ET.SubElement(root, "testsuite", name=f"qeguard.{suite_name}")
        props = ET.SubElement(suite, "properties")
        for key, value in (
            ("target", report.target),
            ("commit", report.commit or ""),
            ("verdict", report.verdict.value),
            ("fail_on", report.fail_on.value),
            ("inputs.files", ", ".join(inputs.files) if inputs else ""),
            ("inputs.packages", str(inputs.packages) if inputs else ""),
            ("inputs.services", ", ".join(inputs.services) if inputs else ""),
            ("database", f"{db.name} {db.date or ''}".strip() if db else ""),
        ):
            ET.SubElement(props, "property", name=key, value=xml_text(value))
        failures = skipped = 0
        for c in cases:
            case = ET.SubElement(
                suite,
                "testcase",
                name=xml_text(c.name),
                classname=f"qeguard.{suite_name}",
                time=f"{time_each:.3f}",
            )
            if c.skipped is not None:
                ET.SubElement(case, "skipped", message=xml_text(c.skipped))
                skipped += 1
                continue
            failing = [f for f in c.findings if report.is_failing(f)]
            other = [f for f in c.findings if not report.is_failing(f)]
            if failing:
                ids = _ids(failing)
                shown = ", ".join(ids[:IDS_IN_MESSAGE])
                more = f" +{len(ids) - IDS_IN_MESSAGE}" if len(ids) > IDS_IN_MESSAGE else ""
                rules = sorted({f.rule for f in failing})
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=xml_text(f"{counted(len(failing), 'finding')}: {shown}{more}"),
                    type=xml_text(" ".join(rules)),
                )
                failure.text = xml_text("\n".join(_describe(f) for f in failing))
                failures += 1
            if other:
                out = ET.SubElement(case, "system-out")
                out.text = xml_text("\n".join(_describe(f) for f in other))
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", str(skipped))
        totals["tests"] += len(cases)
        totals["failures"] += failures
        totals["skipped"] += skipped
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", "0")
    root.set("skipped", str(totals["skipped"]))
    root.set("time", f"{report.duration_s:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
