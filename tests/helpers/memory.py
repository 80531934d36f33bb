"""An in-memory world for the pure checks: a `Tree` held in a dict, keys that never touch
the disk, and signed tier states built from bytes (as python-tuf tests its trusted
metadata set). No git, no file system.

    tree = MemoryTree({"src/pkg/core/a.py": b"x = 1\\n"})
    alice = memory_key("alice")
    config = memory_config(POLICY, {"alice": (alice, "core")})
    tree.files.update(signed_tier(tree, config.policy, "core", [alice], now=NOW))
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from qeguard.integrity.config import Config, parse_config
from qeguard.integrity.dsse import PAYLOAD_TYPE, Envelope, Signature
from qeguard.integrity.keys import PublicKey, SigningKey
from qeguard.integrity.layout import POLICY_PATH, TRUST_PATH, envelope_path, list_path
from qeguard.integrity.manifest import MODE_EXEC, MODE_FILE, format_list, new_payload
from qeguard.integrity.policy import Policy
from qeguard.integrity.sign import build_tiers
from qeguard.integrity.trees.base import Observed, ScannedByPath, Seen, gitlink
from qeguard.integrity.trust import Signer, Trust, dump_trust


class Counter:
    """How many times something ran (see the `verifications` fixture)."""

    calls = 0


@dataclass(frozen=True)
class File:
    data: bytes
    executable: bool = False


@dataclass(frozen=True)
class Link:
    target: str


@dataclass(frozen=True)
class Gitlink:
    commit: str


Content = bytes | File | Link | Gitlink


class MemoryTree(ScannedByPath):
    """A `Tree` whose files live in a dict: path -> bytes (a plain file), `File`, `Link`
    or `Gitlink`. `observed` records every path it was asked to observe."""

    label = "memory"

    def __init__(self, files: Mapping[str, Content], *, exec_bit_meaningful: bool = True):
        self.files: dict[str, Content] = dict(files)
        self.exec_bit_meaningful = exec_bit_meaningful
        self.observed: list[str] = []

    def candidates(self) -> list[str]:
        return sorted(self.files)

    def read(self, path: str) -> bytes | None:
        content = self.files.get(path)
        if isinstance(content, File):
            return content.data
        return content if isinstance(content, bytes) else None

    def observe(self, paths: Sequence[str]) -> dict[str, Observed]:
        self.observed.extend(paths)
        return {p: observe_content(self.files.get(p)) for p in paths}


def observe_content(content: Content | None) -> Observed:
    if content is None:
        return Observed(seen=Seen.MISSING)
    if isinstance(content, Link):
        digest = hashlib.sha256(content.target.encode("utf-8", "surrogateescape")).hexdigest()
        return Observed(seen=Seen.SYMLINK, sha256=digest, mode="120000", target=content.target)
    if isinstance(content, Gitlink):
        return gitlink(content.commit)
    data, executable = (
        (content.data, content.executable)
        if isinstance(content, File)
        else (
            content,
            False,
        )
    )
    return Observed(
        seen=Seen.FILE,
        sha256=hashlib.sha256(data).hexdigest(),
        mode=MODE_EXEC if executable else MODE_FILE,
    )


def memory_key(name: str) -> SigningKey:
    """An Ed25519 key that exists only in memory."""
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return SigningKey(PublicKey(raw=raw, comment=name), private)


def trust_bytes(signers: Mapping[str, tuple[SigningKey, str]]) -> bytes:
    """trust.toml for `{name: (key, "core,middle")}`."""
    trust = Trust(
        signers=tuple(
            Signer(name=name, key=key.public, tiers=frozenset(tiers.split(",")))
            for name, (key, tiers) in signers.items()
        )
    )
    return dump_trust(trust).encode("utf-8")


def memory_config(
    policy_text: str, signers: Mapping[str, tuple[SigningKey, str]], *, label: str = "base"
) -> Config:
    """A trusted `Config` parsed from bytes, as `gate` parses one from a commit."""
    files = {POLICY_PATH: policy_text.encode("utf-8"), TRUST_PATH: trust_bytes(signers)}
    config = parse_config(files.get, label=label)
    assert config is not None
    return config


def envelope_bytes(payload: bytes, keys: Iterable[SigningKey]) -> bytes:
    """A DSSE envelope over `payload`, signed by each of `keys`."""
    env = Envelope(payload_type=PAYLOAD_TYPE, payload=payload)
    for key in keys:
        env = env.with_signature(Signature(keyid=key.public.keyid, sig=key.sign(env.pae)))
    return env.to_bytes()


def signed_tier(
    tree: MemoryTree,
    policy: Policy,
    tier: str,
    keys: Sequence[SigningKey],
    *,
    now: datetime,
    sequence: int = 1,
    expires_days: int = 30,
) -> dict[str, bytes]:
    """The list and envelope `qeguard sign` would write for `tier` of `tree`, signed by
    `keys`: `{list path: bytes, envelope path: bytes}`, ready to add to the tree."""
    (build,) = build_tiers(tree, policy, [policy.tier(tier)])
    payload = new_payload(
        tier=tier,
        sequence=sequence,
        list_bytes=build.list_bytes,
        count=len(build.entries),
        policy_sha256=policy.sha256,
        now=now,
        expires_days=expires_days,
    )
    return {
        list_path(tier): format_list(build.entries),
        envelope_path(tier): envelope_bytes(payload.to_bytes(), keys),
    }


# --- a small signed world -------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

POLICY = """\
[[tiers]]
name = "core"
threshold = 2
patterns = ["src/core/**", "run.sh"]

[[tiers]]
name = "docs"
threshold = 0
on_change = "warn"
patterns = ["docs/**"]
"""

FILES: dict[str, Content] = {
    "src/core/model.py": b"def predict(x):\n    return 2 * x\n",
    "src/core/train.py": b"EPOCHS = 10\n",
    "run.sh": File(b"#!/bin/sh\nexec python -m model\n", executable=True),
    "docs/guide.md": b"# Guide\n",
    "notes.txt": b"not protected\n",
}


class World:
    """Three keys (alice and bob trusted for core, carol trusted for nothing), the trusted
    config, and a tree whose core tier alice and bob signed."""

    def __init__(self) -> None:
        self.alice: SigningKey = memory_key("alice")
        self.bob: SigningKey = memory_key("bob")
        self.carol: SigningKey = memory_key("carol")
        self.config: Config = memory_config(
            POLICY, {"alice": (self.alice, "core"), "bob": (self.bob, "core")}
        )
        self.tree = MemoryTree(
            {
                **FILES,
                POLICY_PATH: self.config.policy_bytes,
                TRUST_PATH: self.config.trust_bytes,
            }
        )
        self.sign("core", self.alice, self.bob)
        self.sign("docs")

    def sign(self, tier: str, *keys: SigningKey, sequence: int = 1) -> None:
        self.tree.files.update(
            signed_tier(self.tree, self.config.policy, tier, keys, now=NOW, sequence=sequence)
        )
