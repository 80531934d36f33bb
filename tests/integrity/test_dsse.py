"""DSSE envelopes: the PAE test vector, strict parsing, canonical JSON."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qeguard.errors import EnvelopeError
from qeguard.integrity.dsse import PAYLOAD_TYPE, Envelope, Signature, canonical_json, pae


def test_pae_matches_published_test_vector() -> None:
    # secure-systems-lab/dsse protocol.md, "Test Vectors".
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t\u00e9", b"\xff\x00") == b"DSSEv1 3 t\xc3\xa9 2 \xff\x00"
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_envelope_round_trip() -> None:
    env = Envelope(
        payload_type=PAYLOAD_TYPE,
        payload=b'{"a":1}',
        signatures=(Signature(keyid="k1", sig=b"\x01" * 64), Signature(keyid="", sig=b"x")),
    )
    again = Envelope.from_bytes(env.to_bytes(), source="e.json")
    assert again == env
    assert again.pae == pae(PAYLOAD_TYPE, b'{"a":1}')


def _doc(**over: object) -> bytes:
    doc: dict[str, object] = {
        "payload": base64.b64encode(b"{}").decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [],
    }
    doc.update(over)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
        (_doc(extra=1), "unexpected field(s) extra"),
        (_doc(payloadType=3), "payloadType must be a string"),
        (_doc(payload=5), "must be a base64 string"),
        (_doc(payload="!!!not base64!!!"), "is not valid base64"),
        (_doc(signatures={}), "signatures must be a list"),
        (_doc(signatures=["x"]), "must be an object"),
        (_doc(signatures=[{"keyid": "a", "sig": "AAAA", "x": 1}]), "must be an object"),
        (_doc(signatures=[{"keyid": 1, "sig": "AAAA"}]), "keyid must be a string"),
        (_doc(signatures=[{"keyid": "a", "sig": None}]), "must be a base64 string"),
    ],
)
def test_envelope_parsing_is_strict(data: bytes, needle: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        Envelope.from_bytes(data, source="m.dsse.json")
    assert needle in info.value.diagnostics()
    assert "m.dsse.json" in info.value.diagnostics()


def test_envelope_accepts_url_safe_base64() -> None:
    raw = b"\xfb\xff\xfe"
    data = _doc(payload=base64.urlsafe_b64encode(raw).decode())
    assert Envelope.from_bytes(data, source="e").payload == raw


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=8), st.randoms())
def test_canonical_json_is_deterministic(value: dict[str, object], rnd: object) -> None:
    # The same mapping in any insertion order gives the same bytes, which parse back.
    items = list(value.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    shuffled = dict(items)
    out = canonical_json(value)
    assert canonical_json(shuffled) == out
    assert json.loads(out.decode("utf-8")) == value
    # No insignificant white space outside strings: re-dumping compactly is identical.
    assert (
        json.dumps(
            json.loads(out), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        == out
    )


@pytest.mark.parametrize("value", [{"a": 1.5}, {"a": [1, {"b": 0.0}]}, {"a": float("nan")}])
def test_canonical_json_rejects_floats(value: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="no floats"):
        canonical_json(value)


def test_canonical_json_is_utf8_not_escaped() -> None:
    assert canonical_json({"b": "\u00e9", "a": [True, None]}) == (
        '{"a":[true,null],"b":"\u00e9"}'.encode()
    )
