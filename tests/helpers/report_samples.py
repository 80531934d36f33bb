"""Reports used by the renderer tests and by scripts/screenshot-html.sh."""

from __future__ import annotations

from datetime import UTC, datetime

from qeguard.report import (
    DatabaseInfo,
    Finding,
    Location,
    Override,
    Report,
    Severity,
    Suppression,
    TierSummary,
)

HOSTILE_PATH = 'src/<script>alert("x")</script>|*a*,b:c%d\n.py'


def sample_report(*, hostile: bool = True) -> Report:
    """Integrity findings with tiers, dependency findings, suppressed and location-less ones."""
    findings = [
        Finding(
            rule="QG-INT-MODIFIED",
            severity=Severity.HIGH,
            title="Protected file modified",
            message="content hash differs from the signed manifest",
            location=Location(path="src/core/model.py"),
            tier="core",
            fix="qeguard sign --tier core --key KEY",
        ),
        Finding(
            rule="QG-INT-MISSING",
            severity=Severity.CRITICAL,
            title="Protected file missing",
            message="listed in the manifest but not in the tree",
            location=Location(path="src/core/keys.py"),
            tier="core",
            fix="qeguard restore src/core/keys.py",
        ),
        Finding(
            rule="QG-INT-ADDED",
            severity=Severity.MEDIUM,
            title="Unsigned protected file",
            message="matches tier middle but is not in its manifest",
            location=Location(path="src/middle/new.py"),
            tier="middle",
            fix="qeguard sign --tier middle --key KEY",
        ),
        Finding(
            rule="QG-SIG-THRESHOLD",
            severity=Severity.HIGH,
            title="Not enough signers",
            message="tier core has 1 of 2 required signers",
            tier="core",
            fix="qeguard sign --tier core --key KEY",
        ),
        Finding(
            rule="QG-INT-PATH",
            severity=Severity.CRITICAL,
            title="Unsafe manifest path",
            message="manifest entry escapes the repository",
            location=Location(path="../../etc/passwd"),
            tier="outer",
        ),
        Finding(
            rule="QG-DEP-VULN",
            severity=Severity.HIGH,
            title="requests 2.19.0 is vulnerable",
            message="PYSEC-2018-28: credentials leak on redirect",
            location=Location(path="requirements.txt", line=3),
            package="requests",
            version="2.19.0",
            fix="pip install 'requests>=2.20.0'",
            details={"id": "PYSEC-2018-28", "aliases": ["CVE-2018-18074"]},
        ),
        Finding(
            rule="QG-DEP-VULN",
            severity=Severity.UNKNOWN,
            title="pyyaml 5.3 is vulnerable",
            message="GHSA-8q59-q68h-6hv4: arbitrary code execution",
            package="pyyaml",
            version="5.3",
            details={"id": "GHSA-8q59-q68h-6hv4"},
        ),
        Finding(
            rule="QG-DEP-UNPINNED",
            severity=Severity.LOW,
            title="numpy is not pinned",
            message="numpy>=1.20 is not an exact pin",
            location=Location(path="requirements.txt", line=7),
            package="numpy",
            fix="pin numpy==1.26.4",
        ),
        Finding(
            rule="QG-DEP-DB",
            severity=Severity.INFO,
            title="Vulnerability data is old",
            message="the offline database is 45 days old",
        ),
        Finding(
            rule="QG-DEP-VULN",
            severity=Severity.HIGH,
            title="jinja2 2.10 is vulnerable",
            message="PYSEC-2019-217",
            location=Location(path="requirements.txt", line=5),
            package="jinja2",
            version="2.10",
            details={"id": "PYSEC-2019-217"},
            suppressed=Suppression(
                reason="not reachable: templates are trusted", kind="ignore", expires="2030-01-01"
            ),
        ),
        Finding(
            rule="QG-INT-MODIFIED",
            severity=Severity.HIGH,
            title="Protected file modified",
            message="changed under an emergency override",
            location=Location(path="src/core/hotfix.py", line=12),
            tier="core",
            suppressed=Suppression(reason="incident 42", kind="override"),
        ),
    ]
    if hostile:
        findings.append(
            Finding(
                rule="QG-INT-MODIFIED",
                severity=Severity.MEDIUM,
                title="Protected file modified <b>bold</b>",
                message="message with <img src=x onerror=alert(1)> & [link](http://evil) "
                "and an escape \x1b[2J",
                location=Location(path=HOSTILE_PATH, line=2),
                tier="middle",
                fix="qeguard sign --tier middle | tee `x`",
            )
        )
    return Report(
        tool_version="0.1.0",
        target="/home/ci/work/repo",
        started=datetime(2024, 10, 20, 12, 0, 0, tzinfo=UTC),
        duration_s=3.25,
        command="ci",
        commit="0123456789abcdef0123456789abcdef01234567",
        trust_source="base ref origin/main (0123456789ab)",
        tiers=(
            TierSummary(
                name="core",
                threshold=2,
                on_change="block",
                files=120,
                sequence=7,
                signers=("alice",),
                created="2024-10-01T00:00:00Z",
                expires="2025-03-30T00:00:00Z",
            ),
            TierSummary(
                name="middle",
                threshold=1,
                on_change="block",
                files=340,
                sequence=3,
                signers=("bob",),
            ),
            TierSummary(name="outer", threshold=0, on_change="warn", files=2100),
        ),
        database=DatabaseInfo(
            source="offline",
            name="pypa/advisory-database",
            date="2024-10-10",
            age_days=10,
            records=4321,
        ),
        overrides=(Override(reason="incident 42", who="carol", when="2024-10-19T08:00:00Z"),),
        findings=tuple(findings),
    )


def clean_report() -> Report:
    return Report(
        tool_version="0.1.0",
        target="repo",
        started=datetime(2024, 10, 20, 12, 0, 0, tzinfo=UTC),
        duration_s=0.2,
        command="verify",
    )
