"""checks.config_change, fed bytes: a changed policy or trust counts only when the old
trust's threshold signed the new bytes (TUF-style root rotation)."""

from __future__ import annotations

from helpers.memory import NOW, World, memory_config, memory_key
from qeguard.integrity.checks.config_change import approve_config_change
from qeguard.integrity.checks.envelope import Options
from qeguard.integrity.config import Config, parse_config
from qeguard.integrity.keys import SigningKey
from qeguard.integrity.layout import POLICY_PATH, TRUST_PATH
from qeguard.rules import RuleId


def _candidate(world: World, signers: dict[str, tuple[SigningKey, str]]) -> Config:
    """A new trust.toml in the tree (policy unchanged), parsed as the verifier would."""
    config = memory_config(world.config.policy_bytes.decode(), signers, label="tree")
    world.tree.files[TRUST_PATH] = config.trust_bytes
    return config


def test_a_rotation_signed_by_the_old_threshold_is_approved(world: World) -> None:
    dave = memory_key("dave")
    candidate = _candidate(
        world,
        {"alice": (world.alice, "core"), "bob": (world.bob, "core"), "dave": (dave, "core")},
    )
    world.sign("core", world.alice, world.bob, sequence=2)  # the old signers cover it
    assert approve_config_change(world.config, candidate, world.tree, Options(now=NOW)) == []


def test_a_branch_that_trusts_its_own_key_proves_nothing(world: World) -> None:
    mallory = memory_key("mallory")
    candidate = _candidate(world, {"mallory": (mallory, "core")})
    world.sign("core", mallory, sequence=2)
    (finding,) = approve_config_change(world.config, candidate, world.tree, Options(now=NOW))
    assert finding.rule == RuleId.TRUST_CHANGE
    assert "signed by 0 of the 2" in finding.message


def test_one_old_signer_is_not_enough(world: World) -> None:
    dave = memory_key("dave")
    candidate = _candidate(world, {"alice": (world.alice, "core"), "dave": (dave, "core")})
    world.sign("core", world.alice, dave, sequence=2)
    (finding,) = approve_config_change(world.config, candidate, world.tree, Options(now=NOW))
    assert "signed by 1 of the 2" in finding.message


def test_new_bytes_the_signed_list_does_not_cover(world: World) -> None:
    # Signed before the edit: the list holds the old trust.toml's hash.
    candidate = _candidate(world, {"alice": (world.alice, "core"), "bob": (world.bob, "core,docs")})
    (finding,) = approve_config_change(world.config, candidate, world.tree, Options(now=NOW))
    assert f"the new {TRUST_PATH} is not covered" in finding.message


def test_a_missing_strictest_manifest_approves_nothing(world: World) -> None:
    candidate = _candidate(world, {"alice": (world.alice, "core")})
    del world.tree.files[".qeguard/manifests/core.dsse.json"]
    (finding,) = approve_config_change(world.config, candidate, world.tree, Options(now=NOW))
    assert "missing or invalid" in finding.message


def test_a_policy_change_needs_the_same_approval(world: World) -> None:
    text = world.config.policy_bytes.decode().replace("threshold = 2", "threshold = 1")
    files = {POLICY_PATH: text.encode(), TRUST_PATH: world.config.trust_bytes}
    candidate = parse_config(files.get, label="tree")
    assert candidate is not None
    world.tree.files[POLICY_PATH] = candidate.policy_bytes
    (finding,) = approve_config_change(world.config, candidate, world.tree, Options(now=NOW))
    assert f"the new {POLICY_PATH} is not covered" in finding.message
    world.sign("core", world.alice, world.bob, sequence=2)
    assert approve_config_change(world.config, candidate, world.tree, Options(now=NOW)) == []
