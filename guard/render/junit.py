"""JUnit XML for CI dashboards: one test case per check (rule), a failure when it found something.

Findings at or above `fail_on` make the check's test case fail; findings below it and
suppressed ones are listed in the test case's `system-out`, so every finding appears once
and the dashboard's red matches the run's verdict.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from qeguard.report import Finding, Report
from qeguard.rules import RULES, family, rule

# XML 1.0 cannot carry most control characters at all, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

_COMMAND_AREAS = {"verify": ("integrity",), "deps": ("dependencies",)}


def xml_text(text: str) -> str:
    """Text that ElementTree can serialise into well-formed XML 1.0."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def area(rule_id: str) -> str:
    fam = family(rule_id)
    return fam.area if fam is not None else "other"


def _describe(f: Finding) -> str:
    where = []
    if f.package:
        where.append(f"{f.package}=={f.version}" if f.version else f.package)
    if f.location:
        where.append(str(f.location))
    if f.tier:
        where.append(f"tier {f.tier}")
    line = f"[{f.severity.value}] {' '.join(where) or '-'}: {f.message or f.title}"
    if f.fix:
        line += f" (fix: {f.fix})"
    if f.suppressed is not None:
        line += f" [suppressed, {f.suppressed.kind}: {f.suppressed.reason}]"
    return f"{line} fingerprint={f.fingerprint}"


def checks(report: Report) -> list[str]:
    """The checks this run performed: the rules of its areas plus any rule that fired."""
    areas = _COMMAND_AREAS.get(report.command, ("integrity", "dependencies"))
    ids = {rid for rid in RULES if area(rid) in areas}
    ids.update(f.rule for f in report.findings)
    return sorted(ids)


def render(report: Report, *, color: bool = False) -> str:
    by_rule: dict[str, list[Finding]] = {}
    for f in report.sorted_findings():
        by_rule.setdefault(f.rule, []).append(f)
    root = ET.Element("testsuites", name="qeguard")
    total_tests = total_failures = 0
    suites: dict[str, ET.Element] = {}
    counts: dict[str, tuple[int, int]] = {}
    time_each = report.duration_s / max(len(checks(report)), 1)
    for rid in checks(report):
        suite_name = area(rid)
        suite = suites.get(suite_name)
        if suite is None:
            suite = ET.SubElement(root, "testsuite", name=f"qeguard.{suite_name}")
            props = ET.SubElement(suite, "properties")
            for key, value in (
                ("target", report.target),
                ("commit", report.commit or ""),
                ("verdict", report.verdict.value),
                ("fail_on", report.fail_on.value),
            ):
                ET.SubElement(props, "property", name=key, value=xml_text(value))
            suites[suite_name] = suite
        case = ET.SubElement(
            suite,
            "testcase",
            name=f"{rid} {rule(rid).name}",
            classname=f"qeguard.{suite_name}",
            time=f"{time_each:.3f}",
        )
        found = by_rule.get(rid, [])
        failing = [f for f in found if report.is_failing(f)]
        other = [f for f in found if not report.is_failing(f)]
        tests, failures = counts.get(suite_name, (0, 0))
        if failing:
            failure = ET.SubElement(
                case,
                "failure",
                message=xml_text(
                    f"{len(failing)} finding{'s' if len(failing) != 1 else ''}: "
                    f"{failing[0].title or failing[0].message}"
                ),
                type=rid,
            )
            failure.text = xml_text("\n".join(_describe(f) for f in failing))
            failures += 1
        if other:
            out = ET.SubElement(case, "system-out")
            out.text = xml_text("\n".join(_describe(f) for f in other))
        counts[suite_name] = (tests + 1, failures)
    for suite_name, suite in suites.items():
        tests, failures = counts[suite_name]
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total_tests += tests
        total_failures += failures
    root.set("tests", str(total_tests))
    root.set("failures", str(total_failures))
    root.set("errors", "0")
    root.set("time", f"{report.duration_s:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
