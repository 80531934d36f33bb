"""qeguard status: the truth about tiers, vulnerability data and hooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import KeyPair, git_run, protect, run_qeguard
from qeguard.integrity.gate import run_verify
from qeguard.integrity.status import Health, HooksHealth, assess, hooks_state, render_text
from qeguard.report import DatabaseInfo

FRESH_DB = DatabaseInfo(source="offline", name="test db", date="2030-01-01", age_days=2, records=10)


@pytest.fixture
def two_signers(repo: Path, keypair: Callable[..., KeyPair]) -> Path:
    """core needs two signers and has both; everything committed and clean."""
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, special=True, commit=False)
    assert run_qeguard("trust", "add", "bob", bob.public, "--tiers", "core", cwd=repo).code == 0
    for key in (alice, bob):
        code, out, err = run_qeguard("sign", "--key", key.private, cwd=repo)
        assert code == 0, out + err
    git_run(repo, "add", "-A")
    git_run(repo, "commit", "-q", "-m", "protected by two")
    return repo


def test_healthy_repository_needs_no_action(two_signers: Path) -> None:
    now = datetime.now(UTC)
    health = assess(
        run_verify(two_signers, now=now),
        now=now,
        database=FRESH_DB,
        database_error=None,
        hooks=HooksHealth(installed=True, where="x"),
    )
    assert health.problems == []
    assert health.exit_code == 0
    core = next(t for t in health.tiers if t.name == "core")
    # Sequence 2: adding bob changed trust.toml, which core protects, so alice re-signed.
    assert (core.sequence, core.threshold, sorted(core.signers), core.drift) == (
        2,
        2,
        ["alice", "bob"],
        0,
    )
    signed_lines = (two_signers / ".qeguard/manifests/core.list").read_bytes().count(b"\n")
    assert core.files == signed_lines > 0
    assert core.age_days == 0 and core.expires_in_days in (179, 180)
    assert render_text(health).endswith("healthy")


def test_expiry_drift_shortfall_and_old_database_need_action(two_signers: Path) -> None:
    (two_signers / "src/pkg/core/model.py").write_text("drifted\n")
    (two_signers / "src/pkg/core/run.sh").unlink()
    soon = datetime.now(UTC) + timedelta(days=170)  # 180-day manifests: 10 days left
    old_db = DatabaseInfo(source="offline", name="old", date="2020-01-01", age_days=900)
    health = assess(
        run_verify(two_signers, now=soon),
        now=soon,
        database=old_db,
        database_error=None,
        hooks=HooksHealth(installed=False),
        refreshed_by_scans=False,  # e.g. a policy that keeps scans offline
    )
    core = next(t for t in health.tiers if t.name == "core")
    assert core.drift == 2
    assert any("expires in 9 days" in p or "expires in 10 days" in p for p in core.problems)
    assert health.database_problem is not None and "qeguard db update" in health.database_problem
    assert any("install-hooks" in n for n in health.notes)
    assert health.exit_code == 1
    text = render_text(health)
    assert "drift 2" in text and "needs action" in text


def test_cli_json_reports_threshold_shortfall_and_real_database(
    repo: Path, keypair: Callable[..., KeyPair], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path / "cache"))
    protect(repo, keypair("alice"), special=True)
    code, out, err = run_qeguard("status", "--format", "json", cwd=repo)
    assert code == 1, err
    doc = json.loads(out)
    core = next(t for t in doc["tiers"] if t["name"] == "core")
    assert (core["signers_present"], core["threshold"]) == (1, 2)
    assert any("needs 2 distinct trusted signer" in p for p in core["problems"])
    # The bundled snapshot is dated; status says how old it is.
    assert doc["database"]["date"] and doc["database"]["age_days"] > 0
    assert doc["hooks"] == {"installed": False, "where": None}
    assert doc["needs_action"] is True


def test_hooks_detected_in_git_hooks_hookspath_and_pre_commit_config(repo: Path) -> None:
    assert hooks_state(repo).installed is False
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\nexec qeguard verify --staged\n")
    assert hooks_state(repo) == HooksHealth(installed=True, where=".git/hooks/pre-commit")
    hook.unlink()
    (repo / "githooks").mkdir()
    (repo / "githooks/pre-commit").write_text("#!/bin/sh\nqeguard verify\n")
    git_run(repo, "config", "core.hooksPath", "githooks")
    assert hooks_state(repo) == HooksHealth(installed=True, where="githooks/pre-commit")
    git_run(repo, "config", "--unset", "core.hooksPath")
    (repo / ".pre-commit-config.yaml").write_text(
        "repos:\n  - repo: https://github.com/example/qeguard\n    hooks: [{id: qeguard-verify}]\n"
    )
    assert hooks_state(repo) == HooksHealth(installed=True, where=".pre-commit-config.yaml")


def test_no_policy_is_a_usage_error(repo: Path) -> None:
    code, _, err = run_qeguard("status", cwd=repo)
    assert code == 2 and "qeguard init" in err


def _health(root: Path, now: datetime, database: DatabaseInfo = FRESH_DB) -> Health:
    return assess(
        run_verify(root, now=now),
        now=now,
        database=database,
        database_error=None,
        hooks=HooksHealth(installed=True, where="x"),
    )


def test_old_database_alone_is_a_note_when_scans_refresh_it(two_signers: Path) -> None:
    old_db = DatabaseInfo(source="offline", name="old", date="2020-01-01", age_days=900)
    health = _health(two_signers, datetime.now(UTC), old_db)
    assert health.exit_code == 0 and health.database_problem is None
    assert any("900 days old; dependency scans refresh it" in n for n in health.notes)


def test_status_lines_read_as_english(two_signers: Path) -> None:
    now = datetime.now(UTC)
    text = render_text(_health(two_signers, now))
    assert "signed today" in text and "day(s)" not in text
    assert "threshold 2: 2 signed (alice, bob), met" in text
    assert "/2" not in text and "/1" not in text
    later = render_text(_health(two_signers, now + timedelta(days=1, hours=1)))
    assert "signed yesterday" in later
