"""trust.toml and counting distinct trusted signers (the heart of the thresholds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from qeguard.errors import ConfigError, KeyFileError
from qeguard.integrity.dsse import PAYLOAD_TYPE, Envelope, Signature
from qeguard.integrity.keys import PublicKey, SigningKey, load_signing_key
from qeguard.integrity.trust import Signer, Trust, count_signers, dump_trust, parse_trust

NOW = datetime(2025, 6, 1, tzinfo=UTC)
PAYLOAD = b'{"schema":"qeguard.manifest/v1","tier":"core"}'


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    # In memory (real Ed25519 keys) so hypothesis may reuse them across examples.
    out = {}
    for name in ("alice", "bob", "carol", "mallory"):
        private = Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        out[name] = SigningKey(PublicKey(raw=raw, comment=name), private)
    return out


def _trust(keys: dict[str, SigningKey], **tiers: list[str]) -> Trust:
    return Trust(
        signers=tuple(
            Signer(name=n, key=keys[n].public, tiers=frozenset(t)) for n, t in tiers.items()
        )
    )


def _signed(
    *signers: SigningKey,
    payload: bytes = PAYLOAD,
    ptype: str = PAYLOAD_TYPE,
    keyid: str | None = None,
) -> Envelope:
    env = Envelope(payload_type=ptype, payload=payload)
    for k in signers:
        env = env.with_signature(
            Signature(keyid=keyid if keyid is not None else k.public.keyid, sig=k.sign(env.pae))
        )
    return env


def test_trusted_signers_count(keys: dict[str, SigningKey]) -> None:
    trust = _trust(keys, alice=["core"], bob=["core", "middle"])
    got = count_signers(_signed(keys["alice"], keys["bob"]), trust, "core", NOW)
    assert sorted(got.signers) == ["alice", "bob"] and len(got) == 2 and not got.rejected


def test_untrusted_key_does_not_count(keys: dict[str, SigningKey]) -> None:
    trust = _trust(keys, alice=["core"])
    got = count_signers(_signed(keys["mallory"]), trust, "core", NOW)
    assert len(got) == 0
    assert "unknown key or bad signature" in got.rejected[0]


def test_untrusted_key_claiming_a_trusted_keyid_does_not_count(
    keys: dict[str, SigningKey],
) -> None:
    trust = _trust(keys, alice=["core"])
    env = _signed(keys["mallory"], keyid=keys["alice"].public.keyid)
    assert len(count_signers(env, trust, "core", NOW)) == 0


def test_trusted_but_not_for_this_tier_does_not_count(keys: dict[str, SigningKey]) -> None:
    trust = _trust(keys, alice=["core"], bob=["middle"])
    got = count_signers(_signed(keys["alice"], keys["bob"]), trust, "core", NOW)
    assert got.signers == ("alice",)
    assert got.rejected == ("bob (not trusted for tier 'core' now)",)


def test_star_means_every_tier(keys: dict[str, SigningKey]) -> None:
    trust = _trust(keys, alice=["*"])
    assert count_signers(_signed(keys["alice"]), trust, "anything", NOW).signers == ("alice",)


def test_same_key_twice_counts_once(keys: dict[str, SigningKey]) -> None:
    trust = _trust(keys, alice=["core"], bob=["core"])
    env = _signed(keys["alice"])
    env = env.with_signature(Signature(keyid="another-id", sig=keys["alice"].sign(env.pae)))
    env = env.with_signature(Signature(keyid="", sig=keys["alice"].sign(env.pae)))
    got = count_signers(env, trust, "core", NOW)
    assert got.signers == ("alice",) and len(got) == 1


def test_same_key_under_two_trust_names_counts_once(keys: dict[str, SigningKey]) -> None:
    # One person listed twice (two names, same key) must not reach a threshold of 2 alone.
    trust = Trust(
        signers=(
            Signer(name="alice", key=keys["alice"].public, tiers=frozenset({"core"})),
            Signer(name="alice-laptop", key=keys["alice"].public, tiers=frozenset({"core"})),
        )
    )
    env = _signed(keys["alice"], keys["alice"])
    assert len(count_signers(env, trust, "core", NOW)) == 1


@pytest.mark.parametrize(
    ("after", "before", "counts"),
    [
        (None, NOW + timedelta(days=1), True),
        (None, NOW, False),
        (NOW + timedelta(seconds=1), None, False),
        (NOW - timedelta(days=1), None, True),
    ],
)
def test_validity_window(
    keys: dict[str, SigningKey], after: datetime | None, before: datetime | None, counts: bool
) -> None:
    trust = Trust(
        signers=(
            Signer(
                name="alice",
                key=keys["alice"].public,
                tiers=frozenset({"core"}),
                valid_after=after,
                valid_before=before,
            ),
        )
    )
    assert (len(count_signers(_signed(keys["alice"]), trust, "core", NOW)) == 1) is counts


@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_any_single_byte_change_invalidates(
    keys: dict[str, SigningKey], data: st.DataObject
) -> None:
    trust = _trust(keys, alice=["core"])
    env = _signed(keys["alice"])
    assert len(count_signers(env, trust, "core", NOW)) == 1
    part = data.draw(st.sampled_from(["payload", "payloadType", "sig"]))
    flip = data.draw(st.integers(1, 255))
    if part == "payload":
        i = data.draw(st.integers(0, len(env.payload) - 1))
        body = bytearray(env.payload)
        body[i] ^= flip
        bad = Envelope(
            payload_type=env.payload_type, payload=bytes(body), signatures=env.signatures
        )
    elif part == "payloadType":
        raw = bytearray(env.payload_type.encode())
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= flip
        bad = Envelope(
            payload_type=raw.decode("latin-1"), payload=env.payload, signatures=env.signatures
        )
    else:
        sig = bytearray(env.signatures[0].sig)
        i = data.draw(st.integers(0, len(sig) - 1))
        sig[i] ^= flip
        bad = Envelope(
            payload_type=env.payload_type,
            payload=env.payload,
            signatures=(Signature(keyid=env.signatures[0].keyid, sig=bytes(sig)),),
        )
    assert len(count_signers(bad, trust, "core", NOW)) == 0


def test_truncated_or_extended_payload_invalidates(keys: dict[str, SigningKey]) -> None:
    trust = _trust(keys, alice=["core"])
    env = _signed(keys["alice"])
    for body in (env.payload[:-1], env.payload + b" ", b""):
        bad = Envelope(payload_type=env.payload_type, payload=body, signatures=env.signatures)
        assert len(count_signers(bad, trust, "core", NOW)) == 0


def test_parse_and_dump_round_trip(keys: dict[str, SigningKey]) -> None:
    trust = Trust(
        signers=(
            Signer(
                name='al "the key" ice',
                key=keys["alice"].public,
                tiers=frozenset({"core", "middle"}),
                valid_after=datetime(2025, 1, 1, tzinfo=UTC),
                valid_before=datetime(2026, 1, 1, 12, tzinfo=UTC),
            ),
            Signer(name="b\u00f6b", key=keys["bob"].public, tiers=frozenset({"*"})),
        )
    )
    again = parse_trust(dump_trust(trust), source="trust.toml")
    assert {s.name: s for s in again.signers} == {s.name: s for s in trust.signers}


@given(st.text(min_size=1, max_size=20))
@settings(max_examples=50, deadline=None)
def test_any_signer_name_round_trips(name: str) -> None:
    key = PublicKey(raw=bytes(range(32)))
    trust = Trust(signers=(Signer(name=name, key=key, tiers=frozenset({"core"})),))
    assert parse_trust(dump_trust(trust), source="t").signers[0].name == name


def test_dates_without_time(keys: dict[str, SigningKey]) -> None:
    text = (
        f'[[signers]]\nname = "a"\nkey = "{keys["alice"].public.openssh}"\n'
        'tiers = ["core"]\nvalid_before = 2026-01-31\nvalid_after = 2025-01-01T10:00:00\n'
    )
    s = parse_trust(text, source="t").signers[0]
    assert s.valid_before == datetime(2026, 1, 31, tzinfo=UTC)
    assert s.valid_after == datetime(2025, 1, 1, 10, tzinfo=UTC)


KEY = PublicKey(raw=bytes(32)).openssh


@pytest.mark.parametrize(
    ("text", "where", "needle"),
    [
        ("[[signers]\n", "trust.toml", "malformed TOML"),
        ("owner = 1\n", "trust.toml", "unknown key(s) owner"),
        ("signers = 3\n", "trust.toml", "array of tables"),
        ("signers = [1]\n", "signers[0]", "must be a table"),
        (f'[[signers]]\nname = "a"\nkey = "{KEY}"\ncolor = 1\n', "signers[0]", "color"),
        (f'[[signers]]\nkey = "{KEY}"\n', "signers[0].name", "non-empty string"),
        (f'[[signers]]\nname = ""\nkey = "{KEY}"\n', "signers[0].name", "non-empty"),
        (
            f'[[signers]]\nname = "a"\nkey = "{KEY}"\n[[signers]]\nname = "a"\nkey = "{KEY}"\n',
            "signers[1].name",
            "duplicate signer 'a'",
        ),
        ('[[signers]]\nname = "a"\n', "signers[0].key", "OpenSSH public key line"),
        (
            '[[signers]]\nname = "a"\nkey = "ssh-rsa AAAAB3NzaC1yc2E= x"\n',
            "signers[0].key",
            "key type ssh-rsa (RSA) is not supported",
        ),
        ('[[signers]]\nname = "a"\nkey = "ssh-ed25519 !!!"\n', "signers[0].key", "damaged"),
        (
            f'[[signers]]\nname = "a"\nkey = "{KEY}"\ntiers = "core"\n',
            "signers[0].tiers",
            "list of tier names",
        ),
        (
            f'[[signers]]\nname = "a"\nkey = "{KEY}"\nvalid_before = "soon"\n',
            "signers[0].valid_before",
            "TOML date",
        ),
    ],
)
def test_malformed_trust_names_the_field(text: str, where: str, needle: str) -> None:
    with pytest.raises((ConfigError, KeyFileError)) as info:
        parse_trust(text, source=".qeguard/trust.toml")
    diag = info.value.diagnostics()
    assert diag.startswith(".qeguard/trust.toml")
    assert where in diag and needle in diag


def test_malformed_trust_toml_has_line_number() -> None:
    with pytest.raises(ConfigError) as info:
        parse_trust('[[signers]]\nname = "a"\nkey = \n', source="t.toml")
    assert "line 3" in info.value.diagnostics()


def _init(repo: Path, run_cli: Any) -> None:
    assert run_cli("init", "--preset", "qemlflow", cwd=repo).code == 0


def test_cli_trust_add_list_remove(repo: Path, run_cli: Any, keypair: Any) -> None:
    _init(repo, run_cli)
    alice = keypair("alice")
    r = run_cli("trust", "add", "alice", alice.public, "--tiers", "core,middle", cwd=repo)
    assert r.code == 0, r.err
    # The key line itself works as well as a file.
    r = run_cli(
        "trust",
        "add",
        "bob",
        keypair("bob").line,
        "--tiers",
        "*",
        "--valid-before",
        "2099-01-01",
        cwd=repo,
    )
    assert r.code == 0, r.err
    r = run_cli("trust", "list", cwd=repo)
    key_id = load_signing_key(alice.private).public.keyid
    assert f"alice  {key_id}  tiers: core, middle" in r.out
    assert "bob" in r.out and "2099-01-01" in r.out
    trust = parse_trust((repo / ".qeguard/trust.toml").read_text(), source="t")
    assert {s.name for s in trust.signers} == {"alice", "bob"}
    assert run_cli("trust", "remove", "bob", cwd=repo).code == 0
    r = run_cli("trust", "remove", "bob", cwd=repo)
    assert r.code == 2 and "no signer named 'bob'" in r.err


def test_cli_trust_add_bad_inputs(repo: Path, run_cli: Any, keypair: Any, tmp_path: Path) -> None:
    _init(repo, run_cli)
    r = run_cli("trust", "add", "x", tmp_path / "missing.pub", "--tiers", "core", cwd=repo)
    assert r.code == 2 and "missing.pub" in r.err and "cannot read" in r.err
    bad = tmp_path / "rsa.pub"
    bad.write_text("ssh-rsa AAAAB3NzaC1yc2E= x\n")
    r = run_cli("trust", "add", "x", bad, "--tiers", "core", cwd=repo)
    assert r.code == 2 and "rsa.pub" in r.err
    r = run_cli(
        "trust",
        "add",
        "x",
        keypair("x").public,
        "--tiers",
        "core",
        "--valid-after",
        "someday",
        cwd=repo,
    )
    assert r.code == 2 and "--valid-after" in r.err


def test_cli_malformed_trust_toml_is_exit_2(repo: Path, run_cli: Any) -> None:
    _init(repo, run_cli)
    (repo / ".qeguard/trust.toml").write_text('[[signers]]\nname = "a"\nkey = 5\n')
    for args in (("verify",), ("trust", "list")):
        r = run_cli(*args, cwd=repo)
        assert r.code == 2, (args, r)
        assert ".qeguard/trust.toml" in r.err and "signers[0].key" in r.err
        assert "Traceback" not in r.err


def test_cli_unknown_tier_in_trust_toml_is_exit_2(repo: Path, run_cli: Any, keypair: Any) -> None:
    # A hand-edited trust.toml naming a tier the policy lacks is a configuration error
    # (most likely a typo that would silently leave a tier without signers).
    _init(repo, run_cli)
    alice = keypair("alice")
    (repo / ".qeguard/trust.toml").write_text(
        f'[[signers]]\nname = "alice"\nkey = "{alice.line}"\ntiers = ["core", "cor"]\n'
    )
    for args in (("verify",), ("sign", "--key", alice.private)):
        r = run_cli(*args, cwd=repo)
        assert r.code == 2, (args, r)
        assert ".qeguard/trust.toml" in r.err and "signers[0].tiers" in r.err
        assert "'cor'" in r.err
