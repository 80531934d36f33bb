"""The trust walk's decisions, fed a small fake history: bytes in, the trust in force out.

Real Ed25519 keys and real signed manifests; only git is replaced, by a dictionary of
blobs keyed by their digest. The end-to-end runs over real git are in test_attacks.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from qeguard.errors import ConfigError
from qeguard.integrity.dsse import PAYLOAD_TYPE, Envelope, Signature
from qeguard.integrity.keys import PublicKey, SigningKey
from qeguard.integrity.layout import POLICY_PATH, TRUST_PATH, envelope_path, list_path
from qeguard.integrity.manifest import Entry, Kind, format_list, new_payload
from qeguard.integrity.policy import parse_policy
from qeguard.integrity.trust_source import Chain, Step, walk

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
POLICY = b"""[[tiers]]
name = "core"
threshold = 2
patterns = [".qeguard/**", "core/**"]

[[tiers]]
name = "docs"
threshold = 0
patterns = ["docs/**"]
"""


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    out = {}
    for name in ("alice", "bob", "carol", "mallory"):
        private = Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        out[name] = SigningKey(PublicKey(raw=raw, comment=name), private)
    return out


def trust(
    keys: Mapping[str, SigningKey], *names: str, before: dict[str, str] | None = None
) -> bytes:
    out = []
    for n in names:
        out += [
            "[[signers]]",
            f'name = "{n}"',
            f'key = "{keys[n].public.openssh}"',
            'tiers = ["*"]',
        ]
        if before and n in before:
            out.append(f"valid_before = {before[n]}")
        out.append("")
    return "\n".join(out).encode()


class History:
    """Blobs by id, and the steps of a first-parent history built one commit at a time."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.steps: list[Step] = []
        self.sequence = 0

    def put(self, data: bytes) -> str:
        oid = hashlib.sha256(data).hexdigest()
        self.blobs[oid] = data
        return oid

    def core(
        self,
        policy: bytes,
        trust_bytes: bytes,
        signers: Sequence[SigningKey],
        *,
        sequence: int | None = None,
    ) -> dict[str, bytes]:
        """The core list over these config bytes, and its envelope signed by `signers`."""
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        lst = format_list(
            Entry(path=p, sha256=hashlib.sha256(d).hexdigest(), mode="100644", kind=Kind.FILE)
            for p, d in ((POLICY_PATH, policy), (TRUST_PATH, trust_bytes))
        )
        payload = new_payload(
            tier="core",
            sequence=sequence,
            list_bytes=lst,
            count=2,
            policy_sha256=parse_policy(policy.decode()).sha256,
            now=T0,
            expires_days=365,
        )
        env = Envelope(payload_type=PAYLOAD_TYPE, payload=payload.to_bytes())
        for k in signers:
            env = env.with_signature(Signature(keyid=k.public.keyid, sig=k.sign(env.pae)))
        return {list_path("core"): lst, envelope_path("core"): env.to_bytes()}

    def commit(self, name: str, files: Mapping[str, bytes | None], *, when: datetime = T0) -> None:
        changes = {p: (None if d is None else self.put(d)) for p, d in files.items()}
        self.steps.append(Step(commit=name, time=when, changes=changes))

    def walk(self, root_files: Mapping[str, bytes], *, now: datetime = NOW) -> Chain:
        files = {p: self.put(d) for p, d in root_files.items()}
        return walk(
            "root",
            files,
            self.steps,
            self.blobs.__getitem__,
            root_reason="test",
            root_time=T0,
            now=now,
        )


def start(h: History, keys: Mapping[str, SigningKey]) -> dict[str, bytes]:
    t = trust(keys, "alice", "bob")
    return {POLICY_PATH: POLICY, TRUST_PATH: t, **h.core(POLICY, t, [keys["alice"], keys["bob"]])}


def names(chain: Chain) -> list[str]:
    return [s.name for s in chain.state.config.trust.signers]


def test_the_root_is_trusted_as_it_is(keys: dict[str, SigningKey]) -> None:
    h = History()
    chain = h.walk(start(h, keys))
    assert names(chain) == ["alice", "bob"]
    assert chain.state.since == "root" and chain.state.pending is None
    assert chain.describe().startswith("trust root root (test)")


def test_a_change_signed_by_the_old_threshold_comes_into_force(keys: dict[str, SigningKey]) -> None:
    h = History()
    root = start(h, keys)
    new = trust(keys, "alice", "bob", "carol")
    h.commit("c1", {TRUST_PATH: new, **h.core(POLICY, new, [keys["alice"], keys["bob"]])})
    chain = h.walk(root)
    assert names(chain) == ["alice", "bob", "carol"]
    assert [(c.commit, c.approved_at) for c in chain.state.approved] == [("c1", "c1")]


def test_a_self_approved_change_never_comes_into_force(keys: dict[str, SigningKey]) -> None:
    h = History()
    root = start(h, keys)
    evil = trust(keys, "mallory")
    h.commit("c1", {TRUST_PATH: evil, **h.core(POLICY, evil, [keys["mallory"]])})
    h.commit("c2", {"core/x.py": b"x = 1\n"})  # later commits change nothing about it
    chain = h.walk(root)
    assert names(chain) == ["alice", "bob"]
    assert chain.state.pending == "c1" and not chain.state.approved


def test_co_signing_across_commits_approves_by_the_last_commit(keys: dict[str, SigningKey]) -> None:
    h = History()
    root = start(h, keys)
    new = trust(keys, "alice", "bob", "carol")
    h.commit("c1", {TRUST_PATH: new, **h.core(POLICY, new, [keys["alice"]])})
    chain = h.walk(root)
    assert names(chain) == ["alice", "bob"] and chain.state.pending == "c1"
    h.commit("c2", {"docs/a.md": b"# a\n"})
    h.commit("c3", h.core(POLICY, new, [keys["alice"], keys["bob"]], sequence=h.sequence))
    chain = h.walk(root)
    assert names(chain) == ["alice", "bob", "carol"]
    assert [(c.commit, c.approved_at) for c in chain.state.approved] == [("c1", "c3")]
    # What each step saw: pending until c3.
    assert [s.pending for _, s in chain.after] == ["c1", "c1", None]


def test_an_approval_after_the_next_change_is_too_late(keys: dict[str, SigningKey]) -> None:
    """c1 is replaced by c2 before anyone co-signs it: c2 is judged by the old trust."""
    h = History()
    root = start(h, keys)
    t1 = trust(keys, "alice", "bob", "mallory")
    h.commit("c1", {TRUST_PATH: t1, **h.core(POLICY, t1, [keys["alice"]])})
    t2 = trust(keys, "alice", "mallory")
    h.commit("c2", {TRUST_PATH: t2, **h.core(POLICY, t2, [keys["alice"], keys["mallory"]])})
    chain = h.walk(root)
    assert names(chain) == ["alice", "bob"] and chain.state.pending == "c2"


def test_rotation_chain_add_then_remove(keys: dict[str, SigningKey]) -> None:
    h = History()
    root = start(h, keys)
    t1 = trust(keys, "alice", "bob", "carol")
    h.commit("add-carol", {TRUST_PATH: t1, **h.core(POLICY, t1, [keys["alice"], keys["bob"]])})
    t2 = trust(keys, "alice", "carol")
    h.commit("retire-bob", {TRUST_PATH: t2, **h.core(POLICY, t2, [keys["alice"], keys["carol"]])})
    chain = h.walk(root)
    assert names(chain) == ["alice", "carol"]
    assert [c.commit for c in chain.state.approved] == ["add-carol", "retire-bob"]


def test_an_old_approval_replayed_cannot_bring_back_a_removed_key(
    keys: dict[str, SigningKey],
) -> None:
    h = History()
    root = start(h, keys)
    t1 = trust(keys, "alice", "bob", "mallory")
    first = h.core(POLICY, t1, [keys["alice"], keys["bob"]])
    h.commit("add-mallory", {TRUST_PATH: t1, **first})
    t2 = trust(keys, "alice", "bob")
    h.commit("remove-mallory", {TRUST_PATH: t2, **h.core(POLICY, t2, [keys["alice"], keys["bob"]])})
    # The old, validly signed manifest that approved t1, and t1 itself, copied back.
    h.commit("replay", {TRUST_PATH: t1, **first})
    chain = h.walk(root)
    assert names(chain) == ["alice", "bob"] and chain.state.pending == "replay"
    # The highest core sequence seen stays with the newer manifest.
    assert chain.state.highest["core"].commit == "remove-mallory"


def test_highest_sequence_is_kept_along_the_history(keys: dict[str, SigningKey]) -> None:
    h = History()
    root = start(h, keys)
    t = root[TRUST_PATH]
    h.commit("s2", h.core(POLICY, t, [keys["alice"], keys["bob"]], sequence=5))
    h.commit("s1", h.core(POLICY, t, [keys["alice"], keys["bob"]], sequence=3))
    chain = h.walk(root)
    best = chain.state.highest["core"]
    assert (best.sequence, best.commit) == (5, "s2")


def test_an_expired_key_cannot_approve_with_a_backdated_commit(keys: dict[str, SigningKey]) -> None:
    """bob's key is valid until T0 + 30 days. A change made after that must not count his
    signature, even when its commit claims an earlier date than one already walked."""
    expiry = (T0 + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = trust(keys, "alice", "bob", before={"bob": expiry})
    t1 = trust(keys, "alice", "bob", "carol", before={"bob": expiry})
    both = [keys["alice"], keys["bob"]]

    def run(*commits: tuple[str, datetime, bool]) -> Chain:
        h = History()
        root = {POLICY_PATH: POLICY, TRUST_PATH: t0, **h.core(POLICY, t0, both)}
        for name, when, change in commits:
            files = {TRUST_PATH: t1, **h.core(POLICY, t1, both)} if change else {"docs/a.md": b"a"}
            h.commit(name, files, when=when)
        return h.walk(root)

    assert names(run(("carol", T0 + timedelta(days=1), True))) == ["alice", "bob", "carol"]
    assert run(("carol", T0 + timedelta(days=60), True)).state.pending == "carol"
    late = run(("later", T0 + timedelta(days=60), False), ("backdated", T0, True))
    assert late.state.pending == "backdated" and not late.state.approved
    # The clock never runs ahead of now either.
    future = run(("future", NOW + timedelta(days=999), False), ("carol", T0, True))
    assert future.state.pending == "carol"


def test_a_change_that_does_not_parse_is_never_in_force(keys: dict[str, SigningKey]) -> None:
    h = History()
    root = start(h, keys)
    broken = b"[[signers]\nname = 'x'\n"
    h.commit("c1", {TRUST_PATH: broken, **h.core(POLICY, broken, [keys["alice"], keys["bob"]])})
    chain = h.walk(root)
    assert names(chain) == ["alice", "bob"] and chain.state.pending == "c1"
    # Reverting to the bytes in force clears it.
    h.commit("c2", {TRUST_PATH: root[TRUST_PATH]})
    assert h.walk(root).state.pending is None


def test_a_deleted_policy_is_never_in_force(keys: dict[str, SigningKey]) -> None:
    h = History()
    root = start(h, keys)
    h.commit("c1", {POLICY_PATH: None})
    chain = h.walk(root)
    assert chain.state.config.policy_bytes == POLICY and chain.state.pending == "c1"


def test_a_root_without_a_policy_is_a_configuration_error(keys: dict[str, SigningKey]) -> None:
    h = History()
    with pytest.raises(ConfigError) as err:
        h.walk({TRUST_PATH: trust(keys, "alice")})
    assert "--trust-root" in (err.value.hint or "")
