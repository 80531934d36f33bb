"""`qeguard trust` and `init --force`: edits that never silently change who is trusted, and
that keep the file as its owners wrote it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import KeyPair, Protected
from qeguard.integrity.trust import parse_trust

COMMENTED = """\
# Who may sign: reviewed by the security team, 2026-03.
[[signers]]
name = "alice"   # release manager
key = "{alice}"
tiers = ["core", "middle"]
"""


@pytest.fixture
def project(repo: Path, keypair: Any) -> Protected:
    """The qemlflow preset, nothing trusted or signed yet."""
    return Protected.build(repo, [], sign=False, commit=False)


def trust_text(p: Protected) -> str:
    return (p.root / ".qeguard/trust.toml").read_text()


def test_add_and_remove_keep_comments(project: Protected, keypair: Any) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    (project.root / ".qeguard/trust.toml").write_text(COMMENTED.format(alice=alice.line))
    project.ok("trust", "add", "bob", bob.public, "--tiers", "core")
    text = trust_text(project)
    assert text.startswith("# Who may sign: reviewed by the security team, 2026-03.\n")
    assert 'name = "alice"   # release manager' in text
    assert [s.name for s in parse_trust(text, source="t").signers] == ["alice", "bob"]
    project.ok("trust", "remove", "bob")
    assert trust_text(project) == COMMENTED.format(alice=alice.line)


def test_existing_name_needs_replace(project: Protected, keypair: Any) -> None:
    alice, other = keypair("alice"), keypair("other")
    project.ok("trust", "add", "alice", alice.public, "--tiers", "core,middle")
    before = trust_text(project)
    r = project.cli("trust", "add", "alice", other.public, "--tiers", "core")
    assert r.code == 2 and "already trusted" in r.err and "--replace" in r.err
    assert trust_text(project) == before
    r = project.ok("trust", "add", "alice", other.public, "--tiers", "core", "--replace")
    assert r.out.startswith("replaced alice")
    (signer,) = parse_trust(trust_text(project), source="t").signers
    assert signer.key.openssh.split()[1] == other.line.split()[1] and signer.tiers == {"core"}


def test_one_key_cannot_be_two_signers(project: Protected, keypair: Any) -> None:
    alice: KeyPair = keypair("alice")
    project.ok("trust", "add", "alice", alice.public, "--tiers", "core")
    r = project.cli("trust", "add", "alice2", alice.public, "--tiers", "core")
    assert r.code == 2 and "already trusted as 'alice'" in r.err
    assert [s.name for s in parse_trust(trust_text(project), source="t").signers] == ["alice"]


def test_inverted_validity_window_is_refused(project: Protected, keypair: Any) -> None:
    r = project.cli(
        "trust",
        "add",
        "alice",
        keypair("alice").public,
        "--tiers",
        "core",
        "--valid-after",
        "2027-01-01",
        "--valid-before",
        "2026-01-01",
    )
    assert r.code == 2 and "the validity window is empty" in r.err
    assert "alice" not in trust_text(project)


def test_list_text_and_json(project: Protected, keypair: Any) -> None:
    alice = keypair("alice")
    project.ok(
        "trust", "add", "alice", alice.public, "--tiers", "core", "--valid-before", "2030-06-30"
    )
    r = project.ok("trust", "list")
    assert r.out.startswith("alice  SHA256:") and "valid - .. 2030-06-30T00:00:00Z" in r.out
    (entry,) = project.ok("trust", "list", "--format", "json").json()["signers"]
    assert entry["name"] == "alice" and entry["tiers"] == ["core"]
    assert entry["valid_before"] == "2030-06-30T00:00:00Z" and entry["valid_after"] is None


def test_init_force_with_another_preset_keeps_trust_valid(project: Protected, keypair: Any) -> None:
    alice = keypair("alice")
    project.ok("trust", "add", "alice", alice.public, "--tiers", "core,middle")
    r = project.ok("init", "--force", "--preset", "strict")
    assert "updated .qeguard/trust.toml" in r.out
    assert "'middle'" in r.err and "strict preset does not have" in r.err
    (signer,) = parse_trust(trust_text(project), source="t").signers
    assert signer.tiers == {"core"}
    # Every command works again (it used to exit 2 on the unknown tier).
    assert project.cli("verify").code in (0, 1)
    assert project.ok("trust", "list").out.startswith("alice")
