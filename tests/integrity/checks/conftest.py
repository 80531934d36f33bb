"""The pure checks are tested with bytes and parsed objects: no git, no disk."""

from __future__ import annotations

import pytest
from helpers.memory import Counter, World


@pytest.fixture
def world() -> World:
    """alice and bob trusted for core (threshold 2), carol for nothing; core signed by
    alice and bob, the unsigned docs tier recorded."""
    return World()


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts signature verifications attempted (the real Ed25519 check still runs)."""
    from qeguard.integrity.keys import PublicKey

    counter = Counter()
    real = PublicKey.verify

    def counting(self: PublicKey, signature: bytes, message: bytes) -> bool:
        counter.calls += 1
        return real(self, signature, message)

    monkeypatch.setattr(PublicKey, "verify", counting)
    return counter
