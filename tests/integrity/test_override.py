"""Emergency overrides: local ones pass and are recorded; in CI an override is a finding
that clears only when the tier's threshold co-signs afterwards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    CORE_FILE,
    KeyPair,
    commit,
    failing,
    git_run,
    protect,
    rules,
    sign,
    verify_json,
    write_files,
)
from qeguard.integrity.override import trailers


@pytest.mark.parametrize(
    ("message", "reasons"),
    [
        ("fix\n\nQeguard-Override: prod is down\n", ["prod is down"]),
        ("fix\n\nSigned-off-by: A <a@x>\nqeguard-override:  hotfix  \n", ["hotfix"]),
        # Only the trailer block (last paragraph) counts, as in git.
        ("Qeguard-Override: in the subject\n\nbody\n", []),
        ("fix\n\nQeguard-Override: why\n\n# Please enter the commit message\n# x\n", ["why"]),
        (
            "fix\n\nQeguard-Override: a\n# ------------------------ >8 ------------------------\n"
            "\nQeguard-Override: b\n",
            ["a"],
        ),
        ("fix\n\nQeguard-Override:\n", []),
        ("", []),
    ],
)
def test_trailers(message: str, reasons: list[str]) -> None:
    assert trailers(message) == reasons


def _unsigned_core_change(repo: Path, n: int = 3) -> None:
    write_files(repo, {CORE_FILE: f"def predict(x):\n    return {n} * x\n"})
    git_run(repo, "add", CORE_FILE)


def test_override_flag_lets_the_staged_check_pass_and_records_it(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    _unsigned_core_change(repo)
    assert verify_json(repo, "--hook", "pre-commit")[0] == 1
    # Outside a hook an override is only reported: plain verify stays strict.
    code, doc = verify_json(repo, "--staged", "--override", "prod outage INC-42")
    assert code == 1 and {"QG-INT-MODIFIED", "QG-OVERRIDE"} <= set(failing(doc))
    code, doc = verify_json(repo, "--hook", "pre-commit", "--override", "prod outage INC-42")
    assert code == 0
    assert doc["overrides"][0]["reason"] == "prod outage INC-42"
    assert doc["overrides"][0]["who"] == "Test User <test@example.com>"
    assert doc["overrides"][0]["when"]
    modified = next(f for f in doc["findings"] if f["rule"] == "QG-INT-MODIFIED")
    assert modified["suppressed"]["kind"] == "override"
    note = next(f for f in doc["findings"] if f["rule"] == "QG-OVERRIDE")
    assert note["severity"] == "low" and "INC-42" in note["message"]


def test_override_environment_variable(
    repo: Path, keypair: Callable[..., KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    _unsigned_core_change(repo)
    monkeypatch.setenv("QEGUARD_OVERRIDE", "hotfix from the env")
    code, doc = verify_json(repo, "--hook", "pre-commit")
    assert code == 0
    assert doc["overrides"][0]["reason"] == "hotfix from the env"


def test_commit_message_trailer_in_commit_msg_mode(
    tmp_path: Path, repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    _unsigned_core_change(repo)
    msg = tmp_path / "COMMIT_EDITMSG"
    msg.write_text("hotfix\n\n# Qeguard-Override: commented out does not count\n")
    assert verify_json(repo, "--hook", "commit-msg", "--message-file", msg)[0] == 1
    msg.write_text("hotfix\n\nQeguard-Override: pager at 3am\n")
    code, doc = verify_json(repo, "--hook", "commit-msg", "--message-file", msg)
    assert code == 0
    assert [o["reason"] for o in doc["overrides"]] == ["pager at 3am"]


def test_ci_reports_a_trailer_override_until_the_threshold_co_signs(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    git_run(repo, "checkout", "-q", "-b", "hotfix")
    _unsigned_core_change(repo, 5)
    git_run(repo, "commit", "-q", "-m", "hotfix\n\nQeguard-Override: prod down, INC-7")
    override_commit = git_run(repo, "rev-parse", "HEAD").strip()

    code, doc = verify_json(repo, "--trust-ref", "main")
    assert code == 1
    found = [f for f in doc["findings"] if f["rule"] == "QG-OVERRIDE"]
    assert len(found) == 1 and found[0]["suppressed"] is None
    assert found[0]["severity"] == "high"
    d = found[0]["details"]
    assert d["who"] == "Test User <test@example.com>"
    assert d["reason"] == "prod down, INC-7"
    assert d["commit"] == override_commit and d["when"]
    assert d["tiers"] == ["core"]
    assert doc["overrides"][0]["commit"] == override_commit
    # The override does not hide the finding it was made for.
    assert f"QG-INT-MODIFIED {CORE_FILE}" in rules(doc)

    # One signer afterwards is not enough for core...
    sign(repo, alice, "core")
    commit(repo, "alice signs the hotfix")
    code, doc = verify_json(repo, "--trust-ref", "main")
    assert code == 1
    assert "QG-OVERRIDE" in failing(doc)
    # ...the threshold is.
    sign(repo, bob, "core")
    commit(repo, "bob co-signs the hotfix")
    code, doc = verify_json(repo, "--trust-ref", "main")
    assert code == 0, rules(doc)
    cleared = next(f for f in doc["findings"] if f["rule"] == "QG-OVERRIDE")
    assert cleared["suppressed"]["kind"] == "override"
    assert "co-signed afterwards" in cleared["suppressed"]["reason"]
    assert doc["overrides"][0]["reason"] == "prod down, INC-7"


def test_override_flag_in_ci_never_suppresses(
    repo: Path, keypair: Callable[..., KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    git_run(repo, "checkout", "-q", "-b", "x")
    _unsigned_core_change(repo)
    git_run(repo, "commit", "-q", "-m", "change")
    monkeypatch.setenv("CI", "true")
    code, doc = verify_json(repo, "--trust-ref", "main", "--override", "trust me")
    assert code == 1
    assert "QG-OVERRIDE" in failing(doc) and "QG-INT-MODIFIED" in failing(doc)


def test_native_hook_respects_the_override_environment_variable(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    import os
    import subprocess
    import sys

    from helpers import run_qeguard

    protect(repo, keypair("alice"), keypair("bob"))
    assert run_qeguard("install-hooks", cwd=repo).code == 0
    _unsigned_core_change(repo)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    env.pop("CI", None)
    env["QEGUARD_OVERRIDE"] = "release blocker"
    proc = subprocess.run(
        ["git", "commit", "-m", "emergency"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "release blocker" in proc.stdout + proc.stderr
