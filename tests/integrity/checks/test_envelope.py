"""checks.envelope, fed bytes: one tier's signed state without any tree."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from helpers.memory import NOW, Counter, World, envelope_bytes
from qeguard.integrity.checks.envelope import Options, TierCheck, check_tier
from qeguard.integrity.dsse import MAX_SIGNATURES, Envelope
from qeguard.integrity.layout import envelope_path, list_path
from qeguard.integrity.manifest import Payload
from qeguard.report import Severity
from qeguard.rules import RuleId


def _check(
    world: World,
    *,
    list_bytes: bytes | None = None,
    env: bytes | None = None,
    tier: str = "core",
    **opts: Any,
) -> TierCheck:
    files = world.tree.files
    lb = files[list_path(tier)] if list_bytes is None else list_bytes
    eb = files[envelope_path(tier)] if env is None else env
    assert isinstance(lb, bytes) and isinstance(eb, bytes)
    return check_tier(
        world.config.policy.tier(tier),
        world.config.policy,
        world.config.trust,
        lb,
        eb,
        Options(now=opts.pop("now", NOW), **opts),
    )


def _rules(check: TierCheck) -> list[str]:
    return sorted(f.rule for f in check.findings)


def _payload(world: World, tier: str = "core") -> Payload:
    data = world.tree.files[envelope_path(tier)]
    assert isinstance(data, bytes)
    return Payload.from_bytes(Envelope.from_bytes(data, source="e").payload, source="p")


def _resigned(world: World, payload_doc: Mapping[str, Any] | bytes, *keys: Any) -> bytes:
    body = payload_doc if isinstance(payload_doc, bytes) else json.dumps(payload_doc).encode()
    return envelope_bytes(body, keys or (world.alice, world.bob))


def test_a_signed_tier_is_clean(world: World) -> None:
    check = _check(world)
    assert check.findings == []
    assert set(check.signers.signers) == {"alice", "bob"}
    assert check.entries is not None and [e.path for e in check.entries] == [
        ".qeguard/policy.toml",
        ".qeguard/trust.toml",
        "run.sh",
        "src/core/model.py",
        "src/core/train.py",
    ]


def test_missing_manifest(world: World) -> None:
    check = check_tier(
        world.config.policy.tier("core"),
        world.config.policy,
        world.config.trust,
        None,
        b"{}",
        Options(now=NOW),
    )
    assert _rules(check) == [RuleId.SIG_MISSING] and check.entries is None


def test_one_signature_short_blocks_strictly_and_warns_locally(world: World) -> None:
    world.sign("core", world.alice)
    strict = _check(world)
    assert _rules(strict) == [RuleId.SIG_THRESHOLD]
    assert strict.findings[0].severity is Severity.HIGH
    local = _check(world, local=True)
    assert local.findings[0].severity is Severity.LOW


def test_nobody_trusted_blocks_even_locally(world: World) -> None:
    world.sign("core", world.carol)
    check = _check(world, local=True)
    assert _rules(check) == [RuleId.SIG_THRESHOLD]
    assert check.findings[0].severity is Severity.HIGH
    assert "unknown key or bad signature" in check.findings[0].message


def test_one_key_signing_twice_counts_once(world: World) -> None:
    payload = _payload(world).to_bytes()
    env = envelope_bytes(payload, [world.alice, world.alice])
    # The same key's signature again, under another keyid: the keyid is only a hint.
    doc = json.loads(env)
    doc["signatures"][1]["keyid"] = "SHA256:elsewhere"
    check = _check(world, env=json.dumps(doc).encode())
    assert list(check.signers.signers) == ["alice"]
    assert _rules(check) == [RuleId.SIG_THRESHOLD]


def test_an_untrusted_key_never_tops_up_the_threshold(world: World) -> None:
    env = envelope_bytes(_payload(world).to_bytes(), [world.alice, world.carol])
    check = _check(world, env=env)
    assert list(check.signers.signers) == ["alice"]
    assert _rules(check) == [RuleId.SIG_THRESHOLD]


def test_a_signature_over_other_bytes_does_not_count(world: World) -> None:
    other = replace(_payload(world), sequence=7).to_bytes()
    forged = json.loads(envelope_bytes(other, [world.alice, world.bob]))
    doc = json.loads(world.tree.files[envelope_path("core")])  # type: ignore[arg-type]
    doc["signatures"] = forged["signatures"]  # valid signatures, for another payload
    check = _check(world, env=json.dumps(doc).encode())
    assert len(check.signers) == 0 and _rules(check) == [RuleId.SIG_THRESHOLD]


def test_list_must_match_its_digest_and_count(world: World) -> None:
    good = world.tree.files[list_path("core")]
    assert isinstance(good, bytes)
    check = _check(world, list_bytes=good.replace(b"EPOCHS", b"EPOCHZ"))
    assert check.findings == []  # the list holds hashes, not content: bytes unchanged
    one_less = b"".join(good.splitlines(keepends=True)[:-1])
    check = _check(world, list_bytes=one_less)
    assert _rules(check) == [RuleId.SIG_BINDING] and check.entries is None


def test_a_list_its_payload_does_not_bind_is_never_parsed(world: World) -> None:
    # Garbage that parse_list would reject line 1 of: the binding check comes first, so
    # the verdict is BINDING, proving the (costly) parse never ran.
    junk = b"not a list line\n" * 100_000
    check = _check(world, list_bytes=junk)
    assert _rules(check) == [RuleId.SIG_BINDING]


def test_envelope_for_another_tier_is_refused(world: World) -> None:
    check = _check(world, env=world.tree.files[envelope_path("docs")])  # type: ignore[arg-type]
    assert _rules(check) == [RuleId.SIG_BINDING]
    assert "signed for tier 'docs'" in check.findings[0].message


def test_wrong_payload_type(world: World) -> None:
    doc = json.loads(world.tree.files[envelope_path("core")])  # type: ignore[arg-type]
    doc["payloadType"] = "application/vnd.in-toto+json"
    assert _rules(_check(world, env=json.dumps(doc).encode())) == [RuleId.SIG_BINDING]


def test_expired_and_policy_digest(world: World) -> None:
    assert _rules(_check(world, now=NOW + timedelta(days=31))) == [RuleId.SIG_EXPIRED]
    doc = _payload(world).to_dict()
    doc["policy_sha256"] = "0" * 64
    from qeguard.integrity.dsse import canonical_json

    check = _check(world, env=_resigned(world, canonical_json(doc)))
    assert _rules(check) == [RuleId.SIG_POLICY]


def test_rollback_against_the_base(world: World) -> None:
    base = _payload(world)
    world.sign("core", world.alice, world.bob, sequence=1)  # same sequence, new dates
    newer = replace(base, sequence=5).to_bytes()
    assert _rules(_check(world, base_payloads={"core": newer})) == [RuleId.SIG_ROLLBACK]
    world.sign("core", world.alice, world.bob, sequence=6)
    assert _rules(_check(world, base_payloads={"core": newer})) == []


def test_a_duplicate_sequence_signed_by_trusted_keys_is_still_malformed(world: World) -> None:
    # Signers were tricked into signing bytes with two `sequence` keys: the parser must not
    # pick one (Python's json takes the last, others the first).
    body = _payload(world).to_bytes().replace(b'"sequence":1', b'"sequence":1,"sequence":9')
    check = _check(world, env=_resigned(world, body))
    assert _rules(check) == [RuleId.SIG_MALFORMED]
    assert "more than once" in check.findings[0].message


def test_a_non_canonical_payload_signed_by_trusted_keys_is_malformed(world: World) -> None:
    body = json.dumps(_payload(world).to_dict(), indent=1).encode()
    check = _check(world, env=_resigned(world, body))
    assert _rules(check) == [RuleId.SIG_MALFORMED]
    assert "not canonical" in check.findings[0].message


def test_base64_junk_is_not_dropped(world: World) -> None:
    doc = json.loads(world.tree.files[envelope_path("core")])  # type: ignore[arg-type]
    sig = doc["signatures"][0]["sig"]
    doc["signatures"][0]["sig"] = sig[:10] + "*" + sig[10:]
    check = _check(world, env=json.dumps(doc).encode())
    assert _rules(check) == [RuleId.SIG_MALFORMED]
    assert "'*' is not base64" in check.findings[0].message


def test_ten_thousand_signatures_are_refused_before_any_verification(
    world: World, verifications: Counter
) -> None:
    doc = json.loads(world.tree.files[envelope_path("core")])  # type: ignore[arg-type]
    junk = base64.b64encode(b"\x00" * 64).decode()
    doc["signatures"] = [{"keyid": f"k{i}", "sig": junk} for i in range(10_000)]
    check = _check(world, env=json.dumps(doc).encode())  # over the size limit too
    assert _rules(check) == [RuleId.SIG_MALFORMED] and check.entries is None
    assert verifications.calls == 0
    # Small enough to pass the size limit: the count limit refuses it.
    doc["signatures"] = [{"keyid": "", "sig": ""}] * 10_000
    check = _check(world, env=json.dumps(doc, separators=(",", ":")).encode())
    assert _rules(check) == [RuleId.SIG_MALFORMED]
    assert "10000 signatures, more than the limit" in check.findings[0].message
    assert verifications.calls == 0


def test_a_50_mb_payload_is_refused_before_any_verification(
    world: World, verifications: Counter
) -> None:
    big = b"{" + b" " * 50_000_000 + b"}"
    junk = [{"keyid": "k", "sig": base64.b64encode(b"\x01" * 64).decode()}] * 16
    env = json.dumps(
        {
            "payload": base64.b64encode(big).decode(),
            "payloadType": "application/vnd.qeguard.manifest+json",
            "signatures": junk,
        }
    ).encode()
    check = _check(world, env=env)
    assert _rules(check) == [RuleId.SIG_MALFORMED]
    assert "more than the limit" in check.findings[0].message
    assert verifications.calls == 0


def test_signature_work_is_bounded(world: World, verifications: Counter) -> None:
    # At the limit, identical junk signatures are verified once, against each key once.
    payload = _payload(world).to_bytes()
    junk = base64.b64encode(b"\x02" * 64).decode()
    env = json.dumps(
        {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": "application/vnd.qeguard.manifest+json",
            "signatures": [{"keyid": "k", "sig": junk}] * MAX_SIGNATURES,
        }
    ).encode()
    check = _check(world, env=env)
    assert _rules(check) == [RuleId.SIG_THRESHOLD]
    assert verifications.calls == len(world.config.trust.signers)
    # Distinct junk: each signature against each trusted key, no more.
    verifications.calls = 0
    doc = json.loads(env)
    doc["signatures"] = [
        {"keyid": "k", "sig": base64.b64encode(hashlib.sha512(bytes([i])).digest()).decode()}
        for i in range(MAX_SIGNATURES)
    ]
    _check(world, env=json.dumps(doc).encode())
    assert verifications.calls == MAX_SIGNATURES * len(world.config.trust.signers)


def test_an_unsupported_signature_key_type_is_named(world: World) -> None:
    def ssh_string(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    kind = b"sk-ssh-ed25519@openssh.com"
    blob = (
        b"SSHSIG"
        + (1).to_bytes(4, "big")
        + ssh_string(ssh_string(kind) + ssh_string(b"\x00" * 32))
        + ssh_string(b"qeguard")
        + ssh_string(b"")
        + ssh_string(b"sha512")
        + ssh_string(ssh_string(kind) + ssh_string(b"\x00" * 64))
    )
    doc = json.loads(world.tree.files[envelope_path("core")])  # type: ignore[arg-type]
    doc["signatures"] = [{"keyid": "yubikey", "sig": base64.b64encode(blob).decode()}]
    check = _check(world, env=json.dumps(doc).encode())
    assert "unsupported sk-ssh-ed25519@openssh.com (FIDO security-key Ed25519) key" in (
        check.findings[0].message
    )
