"""Lines people read, as a user saw them garbled: each one right now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import CORE_FILE, Protected, git_run
from qeguard.errors import ConfigError
from qeguard.integrity.policy import parse_policy
from qeguard.render.sarif import artifact
from qeguard.render.text import subject
from qeguard.report import DatabaseInfo, Finding, Inputs, Location, Report, Severity
from qeguard.rules import RuleId


@pytest.fixture
def everyone(repo: Path, keypair: Any) -> Protected:
    """qemlflow preset, alice and bob trusted for every tier (so they sign outer too)."""
    return Protected.build(repo, [keypair("alice"), keypair("bob")], tiers="*")


def test_tier_header_says_threshold_and_signers_plainly(everyone: Protected) -> None:
    out = everyone.ok("verify").out
    assert "tier middle: 1 file, threshold 1: 2 signed (alice, bob), met" in out
    assert "tier outer: 1 file, threshold 0 (no signature needed), 2 signed (alice, bob)" in out
    assert "2/1" not in out and "unsigned tier (threshold 0) (" not in out


def test_ci_without_deps_is_headed_ci(everyone: Protected) -> None:
    out = everyone.ok("ci", "--no-deps").out
    assert out.startswith("qeguard ci ") and "qeguard verify" not in out


def test_override_is_named_once(everyone: Protected) -> None:
    (everyone.root / CORE_FILE).write_text("hotfix\n")
    everyone.git("add", CORE_FILE)  # an override passes only in a hook
    r = everyone.cli("verify", "--hook", "pre-commit", "--override", "prod is down")
    assert r.code == 0, r.text
    assert "override: prod is down" in r.out and "override: override:" not in r.out


def test_expired_manifest_names_the_tier_once(everyone: Protected) -> None:
    later = datetime.now(UTC) + timedelta(days=400)
    messages = [f.message for f in everyone.verify(now=later).findings]
    assert "the manifest of tier 'core' expired at" in " ".join(messages)
    assert "''s" not in " ".join(messages)


def test_trust_change_points_at_the_file_that_changed(everyone: Protected) -> None:
    policy = everyone.root / ".qeguard/policy.toml"
    policy.write_text(policy.read_text() + "\nfail_on = 'high'\n")
    git_run(everyone.root, "commit", "-qam", "loosen the policy, unsigned")
    report = everyone.verify(trust_ref="HEAD~1")
    (change,) = [f for f in report.findings if f.rule == RuleId.TRUST_CHANGE]
    assert change.location == Location(path=".qeguard/policy.toml")


def test_installed_environment_is_not_double_bracketed() -> None:
    f = Finding(
        rule=RuleId.DEP_VULN,
        severity=Severity.HIGH,
        title="t",
        message="m",
        package="numpy",
        version="1.0",
        location=Location(path="(installed environment)"),
    )
    assert subject(f) == "numpy==1.0 (installed environment)"


def test_database_finding_points_at_what_a_policy_free_scan_read() -> None:
    f = Finding(rule=RuleId.DEP_DB, severity=Severity.LOW, title="old", message="old")
    report = Report(
        tool_version="0",
        command="deps",
        target="/r",
        started=datetime.now(UTC),
        duration_s=0.0,
        fail_on=Severity.MEDIUM,
        database=DatabaseInfo(source="offline", name="db"),
        inputs=Inputs(files=("requirements.txt",)),
        findings=(f,),
    )
    assert artifact(f, report) == ("requirements.txt", None)


def test_policy_errors_name_the_users_own_entry_and_line() -> None:
    text = 'extends = "qemlflow"\n\n[[tiers]]\nname = "data"\npatterns = ["d/**"]\nthreshold = -1\n'
    with pytest.raises(ConfigError) as info:
        parse_policy(text, source=".qeguard/policy.toml")
    message = info.value.diagnostics()
    # qemlflow has three tiers: the merged index would be tiers[3].
    assert "line 6: tiers[0].threshold: must be a whole number" in message
    assert "tiers[3]" not in message and "docs/policy.md" in message


def test_deps_on_a_folder_says_it_is_a_folder(
    everyone: Protected, run_cli: Any, chdir: Any
) -> None:
    chdir(everyone.root)
    r = run_cli("deps", "src")
    assert r.code == 2 and "src is a folder, not a dependency file" in r.err


def test_markdown_and_html_tables_show_the_threshold_not_a_fraction(everyone: Protected) -> None:
    markdown = everyone.ok("verify", "--format", "markdown").out
    assert "| middle | 1 | alice, bob | 1 | block |" in markdown
    assert "| outer | 1 | alice, bob | 0 (none needed) | warn |" in markdown
    html = everyone.ok("verify", "--format", "html").out
    assert "<td>2/1" not in html and "<td>0 (none needed)</td>" in html
