"""Reports used by the renderer tests and by scripts/screenshot-html.sh."""

from __future__ import annotations

from datetime import UTC, datetime

from qeguard.report import (
    DatabaseInfo,
    Finding,
    Fix,
    Inputs,
    Location,
    Override,
    Report,
    Severity,
    Suppression,
    TierSummary,
)

HOSTILE_PATH = 'src/<script>alert("x")</script>|*a*,b:c%d\n.py'

# 30 old pins, each affected by at least one advisory in the bundled PyPA snapshot.
OLD_PINS = (
    "django==2.2.0",
    "requests==2.19.1",
    "jinja2==2.10",
    "pyyaml==5.3",
    "urllib3==1.24.1",
    "flask==0.12",
    "pillow==6.0.0",
    "numpy==1.16.0",
    "cryptography==2.2",
    "lxml==4.2.0",
    "paramiko==2.4.0",
    "sqlalchemy==1.2.0",
    "werkzeug==0.14",
    "tornado==5.0",
    "twisted==18.4.0",
    "aiohttp==3.5.0",
    "celery==4.0.0",
    "ansible==2.7.0",
    "bleach==2.1",
    "mistune==0.8",
    "markdown2==2.3.0",
    "pygments==2.5.1",
    "setuptools==40.0.0",
    "pip==19.0",
    "wheel==0.30.0",
    "certifi==2018.1.18",
    "idna==2.7",
    "py==1.8.0",
    "babel==2.8.0",
    "pyjwt==1.5.0",
)


def sample_report(*, hostile: bool = True) -> Report:
    """Integrity findings with tiers, dependency findings, suppressed and location-less ones.

    The requests advisory is produced twice (requirements.txt and a constraints file), as
    a scanner reading both would: the report holds it once, with both places."""
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
        *(
            Finding(
                rule="QG-DEP-VULN",
                severity=Severity.HIGH,
                title="requests 2.19.0: PYSEC-2018-28",
                message="credentials leak on redirect",
                location=where,
                package=name,
                version="2.19.0",
                fix="upgrade requests to 2.20.0",
                details={
                    "id": "PYSEC-2018-28",
                    "aliases": ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
                    "fix_versions": ["2.20.0"],
                    "cvss": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
                },
            )
            for name, where in (
                ("requests", Location(path="requirements.txt", line=3)),
                ("Requests", Location(path="constraints.txt", line=1)),
            )
        ),
        Finding(
            rule="QG-DEP-VULN",
            severity=Severity.UNKNOWN,
            title="pyyaml 5.3: GHSA-8q59-q68h-6hv4",
            message="arbitrary code execution",
            package="pyyaml",
            version="5.3",
            details={"id": "GHSA-8q59-q68h-6hv4", "fix_versions": ["5.4"]},
        ),
        Finding(
            rule="QG-INT-MODIFIED",
            severity=Severity.LOW,
            title="Protected file modified",
            message="an outer-tier (warn) file changed",
            location=Location(path="docs/guide.md"),
            tier="outer",
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
        inputs=Inputs(
            files=("requirements.txt", "constraints.txt"),
            packages=4,
            dependencies=5,
            services=("offline",),
        ),
        overrides=(Override(reason="incident 42", who="carol", when="2024-10-19T08:00:00Z"),),
        findings=tuple(findings),
        fixes=(
            Fix(
                package="requests",
                version="2.19.0",
                fixed="2.20.0",
                path="requirements.txt",
                applied=False,
            ),
            Fix(package="pyyaml", version="5.3", fixed="5.4", path=None, applied=False),
        ),
    )


def clean_report() -> Report:
    return Report(
        tool_version="0.1.0",
        target="repo",
        started=datetime(2024, 10, 20, 12, 0, 0, tzinfo=UTC),
        duration_s=0.2,
        command="verify",
    )


def many_findings_report(changed: int = 50_000, *, pins: bool = True) -> Report:
    """A project with many findings, shaped like the issue's: 30 old pins declared through
    two files (five advisories each), a few bandit hits that share a test and a file, and
    `changed` modified protected files spread over a block, a block and a warn tier."""
    findings: list[Finding] = []
    for p in range(30 if pins else 0):
        for a in range(5):
            sev = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)[(p + a) % 4]
            for where in (
                Location(path="requirements.txt", line=p + 1),
                Location(path="requirements/base.txt", line=p + 1),
            ):
                findings.append(
                    Finding(
                        rule="QG-DEP-VULN",
                        severity=sev,
                        title=f"pkg{p} 1.0: PYSEC-2020-{p * 10 + a}",
                        message=f"advisory {a} for pkg{p}: " + "a long description " * 20,
                        location=where,
                        package=f"pkg{p}",
                        version="1.0",
                        fix=f"upgrade pkg{p} to 2.{a}",
                        details={
                            "id": f"PYSEC-2020-{p * 10 + a}",
                            "aliases": [f"CVE-2020-{1000 + p * 10 + a}"],
                            "fix_versions": [f"2.{a}"],
                        },
                    )
                )
    for line in (3, 9, 27):
        findings.append(
            Finding(
                rule="QG-SAST-B602",
                severity=Severity.MEDIUM,
                title="B602 subprocess_popen_with_shell_equals_true",
                message="subprocess call with shell=True identified",
                location=Location(path="src/tool.py", line=line),
            )
        )
    tiers = (("core", Severity.HIGH), ("middle", Severity.HIGH), ("outer", Severity.LOW))
    for i in range(changed):
        tier, sev = tiers[i % 3]
        findings.append(
            Finding(
                rule="QG-INT-MODIFIED",
                severity=sev,
                title="Protected file modified",
                message="content hash differs from the signed manifest",
                location=Location(path=f"pkg{i % 37:02d}/mod{i % 211:03d}/f{i:06d}.py"),
                tier=tier,
                fix=f"qeguard sign --tier {tier} --key KEY",
            )
        )
    return Report(
        tool_version="0.1.0",
        target="/home/ci/work/big",
        started=datetime(2024, 10, 20, 12, 0, 0, tzinfo=UTC),
        duration_s=41.0,
        command="ci",
        tiers=tuple(
            TierSummary(name=t, threshold=0 if t == "outer" else 1, on_change=oc, files=50_000)
            for t, oc in (("core", "block"), ("middle", "block"), ("outer", "warn"))
        ),
        database=DatabaseInfo(
            source="offline", name="pypa/advisory-database", date="2024-10-10", records=4321
        ),
        inputs=Inputs(
            files=("requirements.txt", "requirements/base.txt"),
            packages=30,
            dependencies=60,
            services=("offline",),
        ),
        findings=tuple(findings),
    )
