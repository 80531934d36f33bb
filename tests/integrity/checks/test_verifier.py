"""The verifier end to end, fed a trusted config and an in-memory tree: no git, no disk."""

from __future__ import annotations

from helpers.memory import NOW, Gitlink, World, envelope_bytes, memory_config, memory_key
from qeguard.integrity.checks.envelope import Options
from qeguard.integrity.layout import POLICY_PATH, TRUST_PATH, envelope_path, list_path
from qeguard.integrity.manifest import Entry, Kind, format_list, new_payload
from qeguard.integrity.verifier import verify
from qeguard.report import Severity
from qeguard.rules import RuleId


def _rules(world: World, **opts: object) -> list[str]:
    result = verify(world.tree, world.config, Options(now=NOW, **opts))  # type: ignore[arg-type]
    return sorted(f"{f.rule} {f.location.path if f.location else ''}" for f in result.findings)


def test_a_signed_tree_verifies_clean(world: World) -> None:
    result = verify(world.tree, world.config, Options(now=NOW))
    assert result.findings == []
    core = next(t for t in result.tiers if t.name == "core")
    assert core.threshold_met and core.files == 5 and set(core.signers) == {"alice", "bob"}


def test_each_change_is_found(world: World) -> None:
    world.tree.files["src/core/model.py"] = b"def predict(x):\n    return 3 * x\n"
    world.tree.files["src/core/new.py"] = b"evil = True\n"
    del world.tree.files["src/core/train.py"]
    world.tree.files["docs/guide.md"] = b"# Changed\n"
    assert _rules(world) == [
        "QG-INT-ADDED src/core/new.py",
        "QG-INT-MISSING src/core/train.py",
        "QG-INT-MODIFIED docs/guide.md",
        "QG-INT-MODIFIED src/core/model.py",
    ]


def test_a_gitlink_bump_needs_the_tiers_signers(world: World) -> None:
    world.tree.files["src/core/vendored"] = Gitlink("1" * 40)
    assert _rules(world) == ["QG-INT-ADDED src/core/vendored"]
    world.sign("core", world.alice, world.bob, sequence=2)
    assert _rules(world) == []
    world.tree.files["src/core/vendored"] = Gitlink("2" * 40)  # the bump
    assert _rules(world) == ["QG-INT-MODIFIED src/core/vendored"]
    world.sign("core", world.alice, sequence=3)  # one signer of two
    assert _rules(world) == ["QG-SIG-THRESHOLD .qeguard/manifests/core.dsse.json"]
    world.sign("core", world.alice, world.bob, sequence=3)
    assert _rules(world) == []


def test_a_self_vouching_config_is_not_used(world: World) -> None:
    mallory = memory_key("mallory")
    candidate = memory_config(
        world.config.policy_bytes.decode(), {"mallory": (mallory, "core")}, label="tree"
    )
    world.tree.files[TRUST_PATH] = candidate.trust_bytes
    world.tree.files["src/core/model.py"] = b"evil = True\n"
    world.sign("core", mallory, sequence=2)
    result = verify(world.tree, world.config, Options(now=NOW), candidate=candidate)
    assert result.effective is world.config
    rules = {f.rule for f in result.findings}
    assert RuleId.TRUST_CHANGE in rules and RuleId.SIG_THRESHOLD in rules


def test_unsafe_entries_are_reported_and_never_observed(world: World) -> None:
    # A core list that names a path outside the repository, validly signed: the entry is
    # reported and never looked up, so no tree is ever asked for `../outside`.
    core_list = world.tree.files[list_path("core")]
    assert isinstance(core_list, bytes)
    evil = Entry(path="../outside", sha256="0" * 64, mode="100644", kind=Kind.FILE)
    listed = format_list([evil]) + core_list
    payload = new_payload(
        tier="core",
        sequence=2,
        list_bytes=listed,
        count=listed.count(b"\n"),
        policy_sha256=world.config.policy.sha256,
        now=NOW,
        expires_days=30,
    )
    world.tree.files[list_path("core")] = listed
    world.tree.files[envelope_path("core")] = envelope_bytes(
        payload.to_bytes(), [world.alice, world.bob]
    )
    world.tree.observed.clear()
    assert _rules(world) == ["QG-INT-PATH .qeguard/manifests/core.list"]
    assert "../outside" not in world.tree.observed


def test_only_paths_limits_what_is_observed(world: World) -> None:
    world.tree.files["src/core/model.py"] = b"changed\n"
    world.tree.files["src/core/train.py"] = b"changed too\n"
    world.tree.observed.clear()
    rules = _rules(world, only_paths=frozenset({"src/core/train.py"}))
    assert rules == ["QG-INT-MODIFIED src/core/train.py"]
    assert set(world.tree.observed) == {"src/core/train.py"}


def test_policy_warnings(world: World) -> None:
    text = world.config.policy_bytes.decode().replace('"run.sh"', '"src/cor/**"')
    config = memory_config(text, {"alice": (world.alice, "core")})
    world.config = config
    world.tree.files[POLICY_PATH] = config.policy_bytes
    world.tree.files[TRUST_PATH] = config.trust_bytes
    world.sign("core", world.alice)
    world.sign("docs")
    result = verify(world.tree, config, Options(now=NOW))
    warnings = {f.rule: f for f in result.findings if f.severity is Severity.LOW}
    assert "needs 2 distinct signer(s) but 1 key(s)" in warnings[RuleId.SIG_UNREACHABLE].message
    assert "'src/cor/**' matches no file" in warnings[RuleId.INT_UNMATCHED].message
    # A hook sees only staged paths: whether a pattern matches needs the whole tree.
    staged = verify(world.tree, config, Options(now=NOW, only_paths=frozenset({"a"})))
    assert RuleId.INT_UNMATCHED not in {f.rule for f in staged.findings}
