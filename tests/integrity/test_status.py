"""qeguard status: the truth about tiers, vulnerability data and hooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import DATA, KeyPair, git_run, protect, run_qeguard
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


def _status(root: Path) -> tuple[int, dict]:
    code, out, err = run_qeguard("status", "--format", "json", cwd=root)
    assert code in (0, 1), err
    return code, json.loads(out)


def test_old_bundled_database_needs_action_only_when_scans_stay_offline(
    two_signers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled snapshot is years old. Scans allowed the network refresh it before
    they use it: a note. With $QEGUARD_OFFLINE set they never do: status needs action."""
    monkeypatch.delenv("QEGUARD_OFFLINE")
    code, doc = _status(two_signers)
    assert doc["database"]["age_days"] > 30
    assert code == 0 and doc["database_problem"] is None
    assert any("dependency scans refresh it when online" in n for n in doc["notes"])
    monkeypatch.setenv("QEGUARD_OFFLINE", "1")
    code, doc = _status(two_signers)
    assert code == 1 and "db update` when online" in doc["database_problem"]
    assert doc["problems"] == [f"vulnerability database: {doc['database_problem']}"]


def test_old_database_needs_action_when_the_policy_or_an_import_keeps_it(
    two_signers: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Network allowed, but scans will not refresh: a policy whose db_max_age_days is
    above the 30-day staleness limit, or a database `db import` stored (the real records
    of tests/data, last modified years ago)."""
    monkeypatch.delenv("QEGUARD_OFFLINE")
    policy = two_signers / ".qeguard/policy.toml"
    original = policy.read_text()
    policy.write_text(original + "\n[deps]\ndb_max_age_days = 90\n")
    _, doc = _status(two_signers)
    assert "older than 30" in (doc["database_problem"] or "")
    policy.write_text(original + "\n[deps]\ndb_max_age_days = 30\n")
    _, doc = _status(two_signers)
    assert doc["database_problem"] is None
    policy.write_text(original)
    assert run_qeguard("db", "import", DATA / "deps" / "osv", cwd=two_signers).code == 0
    code, doc = _status(two_signers)
    assert doc["database"]["source"] == "offline" and doc["database"]["age_days"] > 30
    assert code == 1 and "db update` when online" in doc["database_problem"]


def test_scans_keep_a_database_old_for_the_reasons_status_reports() -> None:
    """The scanner's own conditions, each named (`qeguard.deps.update`)."""
    from qeguard.deps.database import DatabaseMeta
    from qeguard.deps.update import needs_refresh, why_scans_keep_it_old

    downloaded = DatabaseMeta(name="osv", date="2020-01-01", source="https://example/all.zip")
    imported = DatabaseMeta(name="osv", date="2020-01-01", source="/tmp/all.zip")
    keep = why_scans_keep_it_old
    assert "QEGUARD_OFFLINE" in (keep(None, max_age_days=1, stale_days=30) or "")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("QEGUARD_OFFLINE")
        assert keep(None, max_age_days=1, stale_days=30) is None
        assert keep(downloaded, max_age_days=30, stale_days=30) is None
        assert "db_max_age_days (31)" in (keep(downloaded, max_age_days=31, stale_days=30) or "")
        assert "db import" in (keep(imported, max_age_days=1, stale_days=30) or "")
    # ... and they agree with what a scan does.
    assert needs_refresh(downloaded, 1, url="https://example/all.zip")
    assert not needs_refresh(imported, 1, url="https://example/all.zip")
