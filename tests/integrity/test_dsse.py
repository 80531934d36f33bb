"""DSSE envelopes: the PAE test vector, strict parsing, canonical JSON."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qeguard.errors import EnvelopeError
from qeguard.integrity.dsse import (
    MAX_ENVELOPE_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_SIGNATURES,
    PAYLOAD_TYPE,
    Envelope,
    Signature,
    b64decode_strict,
    canonical_json,
    loads_canonical,
    pae,
)


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
        (b"not json", "not valid envelope JSON"),
        (b"[]", "must be a JSON object"),
        (b"\xff\xfe", "envelope JSON is not UTF-8"),
        (b'{"payload": "", "payload": "e30="}', "key 'payload' more than once"),
        (b'{"payloadType": NaN}', "not valid envelope JSON"),
        (b"[" * 100000 + b"]" * 100000, "not valid envelope JSON"),
        (_doc(extra=1), "unexpected field(s) extra"),
        (_doc(payloadType=3), "payloadType must be a string"),
        (_doc(payload=5), "must be a base64 string"),
        (_doc(payload="!!!not base64!!!"), "is not valid base64"),
        (_doc(payload="e30=\n"), "the character '\\n' is not base64"),
        (_doc(payload="e3 0="), "the character ' ' is not base64"),
        (_doc(payload="e3-/"), "mixes two alphabets"),
        (_doc(payload="e3=0"), "padding inside"),
        (_doc(payload="e30==="), "not valid base64"),
        (_doc(payload="e30=="), "wrong padding"),
        (_doc(payload="e31="), "unused bits are set"),
        (_doc(signatures=[{"keyid": "a", "sig": "AA\u00e9A"}]), "not base64"),
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


@given(st.binary(max_size=64))
def test_base64_each_accepted_form_decodes_to_the_bytes(raw: bytes) -> None:
    std = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode()
    for text in {std, url, std.rstrip("="), url.rstrip("=")}:
        assert b64decode_strict(text, "x") == raw


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0), st.sampled_from("!.*\n\t é"))
def test_base64_junk_anywhere_is_rejected(raw: bytes, at: int, junk: str) -> None:
    # Python's own decoder drops such characters unless told to validate.
    text = base64.b64encode(raw).decode()
    i = at % (len(text) + 1)
    with pytest.raises(EnvelopeError):
        b64decode_strict(text[:i] + junk + text[i:], "x")


@given(st.binary(min_size=1, max_size=64).filter(lambda b: len(b) % 3), st.data())
def test_base64_with_unused_bits_set_is_rejected(raw: bytes, data: st.DataObject) -> None:
    # "QQ==" and "QR==" both decode to b"A": only the canonical text is accepted, so one
    # signature has one text.
    text = base64.b64encode(raw).decode()
    body = text.rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    unused = 4 if len(raw) % 3 == 1 else 2  # low bits of the last character
    last = alphabet.index(body[-1])
    flip = data.draw(st.integers(min_value=1, max_value=(1 << unused) - 1))
    forged = body[:-1] + alphabet[last ^ flip] + text[len(body) :]
    assert base64.b64decode(forged) == raw  # what a lenient parser would accept
    with pytest.raises(EnvelopeError, match="unused bits"):
        b64decode_strict(forged, "x")


def test_an_oversized_envelope_is_rejected_before_it_is_parsed() -> None:
    big = _doc(payload=base64.b64encode(b"x" * (MAX_ENVELOPE_BYTES)).decode())
    with pytest.raises(EnvelopeError, match="more than the limit"):
        Envelope.from_bytes(big, source="e")
    # Not even JSON: the size alone decides.
    with pytest.raises(EnvelopeError, match="more than the limit"):
        Envelope.from_bytes(b"{" * (MAX_ENVELOPE_BYTES + 1), source="e")


def test_an_oversized_payload_is_rejected() -> None:
    data = _doc(payload=base64.b64encode(b"x" * (MAX_PAYLOAD_BYTES + 1)).decode())
    assert len(data) < MAX_ENVELOPE_BYTES
    with pytest.raises(EnvelopeError, match="payload is larger than the limit"):
        Envelope.from_bytes(data, source="e")
    ok = _doc(payload=base64.b64encode(b"x" * MAX_PAYLOAD_BYTES).decode())
    assert len(Envelope.from_bytes(ok, source="e").payload) == MAX_PAYLOAD_BYTES


def test_too_many_signatures_are_rejected() -> None:
    sig = {"keyid": "k", "sig": base64.b64encode(b"\x00" * 64).decode()}
    Envelope.from_bytes(_doc(signatures=[sig] * MAX_SIGNATURES), source="e")
    with pytest.raises(EnvelopeError, match=f"more than the limit of {MAX_SIGNATURES}"):
        Envelope.from_bytes(_doc(signatures=[sig] * (MAX_SIGNATURES + 1)), source="e")


def test_oversized_signature_and_keyid_are_rejected() -> None:
    sig = base64.b64encode(b"\x00" * 5000).decode()
    with pytest.raises(EnvelopeError, match="signature is larger"):
        Envelope.from_bytes(_doc(signatures=[{"keyid": "k", "sig": sig}]), source="e")
    with pytest.raises(EnvelopeError, match="keyid is longer"):
        Envelope.from_bytes(_doc(signatures=[{"keyid": "k" * 300, "sig": "AA=="}]), source="e")


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


@given(st.dictionaries(st.text(), json_values, max_size=8))
def test_canonical_bytes_parse_back_and_only_they_do(value: dict[str, object]) -> None:
    data = canonical_json(value)
    assert loads_canonical(data, where="p") == value
    # The same document with any insignificant white space is refused.
    spaced = json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")
    if spaced != data:
        with pytest.raises(EnvelopeError, match="not canonical"):
            loads_canonical(spaced, where="p")
    ascii_only = json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")
    if ascii_only != data:
        with pytest.raises(EnvelopeError, match="not canonical"):
            loads_canonical(ascii_only, where="p")


@pytest.mark.parametrize(
    "data",
    [b'{"a":1,"a":2}', b'{"b":{"x":1,"x":1}}', b'{"a":Infinity}', b'{"a":1.0}', b'{"a":1e2}'],
)
def test_canonical_parse_refuses_ambiguous_json(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        loads_canonical(data, where="p")


@pytest.mark.parametrize("value", [{"a": 1.5}, {"a": [1, {"b": 0.0}]}, {"a": float("nan")}])
def test_canonical_json_rejects_floats(value: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="no floats"):
        canonical_json(value)


def test_canonical_json_is_utf8_not_escaped() -> None:
    assert canonical_json({"b": "\u00e9", "a": [True, None]}) == (
        '{"a":[true,null],"b":"\u00e9"}'.encode()
    )
