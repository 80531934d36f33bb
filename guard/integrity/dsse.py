"""DSSE v1 envelopes and canonical JSON: the only place signed bytes are produced or parsed.

Spec: secure-systems-lab/dsse, envelope.md and protocol.md. Signatures cover the
pre-authentication encoding (PAE), never the JSON of the envelope, so white space or key
order in the envelope file cannot change what was signed.

Everything here is parsed strictly and within fixed bounds: an envelope is read by every
verification, including on a pull request an attacker wrote, so no input may be ambiguous
(a duplicate key, junk in base64) or cost more than a few milliseconds before a signature
is even looked at.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qeguard.errors import EnvelopeError

PAYLOAD_TYPE = "application/vnd.qeguard.manifest+json"

# Bounds, checked before anything is parsed or verified. A real envelope is a few hundred
# bytes per signature and a payload of about 400 bytes; each signature costs one
# verification per trusted key, so their number bounds the work of a verification.
MAX_ENVELOPE_BYTES = 256 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024
MAX_SIGNATURES = 64
MAX_SIGNATURE_BYTES = 4096  # an SSHSIG blob is about 300 bytes, a raw Ed25519 one 64
MAX_KEYID_CHARS = 256


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSEv1 pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """UTF-8, sorted keys, no insignificant white space, no floats (they do not round-trip)."""
    _reject_floats(value, "")
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _reject_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise ValueError(f"canonical JSON has no floats (at {path or 'top level'})")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _reject_floats(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _reject_floats(v, f"{path}[{i}]")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(data: bytes, *, where: str, what: str = "JSON") -> Any:
    """Parse JSON that must mean one thing: UTF-8, no duplicate keys (Python's json keeps
    the last of two `sequence` fields, another parser the first), no NaN or Infinity."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"{what} is not UTF-8 ({exc.reason})", where=where) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except _DuplicateKey as exc:
        raise EnvelopeError(
            f"{what} has the key {str(exc)!r} more than once",
            where=where,
            hint="re-create it with `qeguard sign`",
        ) from None
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise EnvelopeError(
            f"not valid {what}: {exc}", where=where, hint="re-create it with `qeguard sign`"
        ) from None


def loads_canonical(data: bytes, *, where: str, what: str = "payload") -> dict[str, Any]:
    """Parse a JSON object that must be in canonical form (`canonical_json`) byte for byte,
    so that the signed bytes have exactly one reading."""
    doc = loads_strict(data, where=where, what=what)
    if not isinstance(doc, dict):
        raise EnvelopeError(f"{what} must be a JSON object", where=where)
    try:
        canonical = canonical_json(doc)
    except (ValueError, UnicodeEncodeError) as exc:
        raise EnvelopeError(f"{what} is not canonical JSON: {exc}", where=where) from None
    if canonical != data:
        raise EnvelopeError(
            f"{what} is not canonical JSON (sorted keys, no white space, UTF-8 unescaped)",
            where=where,
            hint="re-create it with `qeguard sign`",
        )
    return doc


_STANDARD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def b64decode_strict(text: Any, where: str) -> bytes:
    """Standard or URL-safe base64 (DSSE allows both), padded or not, and nothing else:
    no character outside the alphabet, no mixed alphabets, no white space, and only the
    canonical encoding of the bytes (unused low bits zero), so one signature has one text.
    """
    if not isinstance(text, str):
        raise EnvelopeError("must be a base64 string", where=where)
    if _STANDARD.fullmatch(text):
        std = text
    elif _URL_SAFE.fullmatch(text):
        std = text.replace("-", "+").replace("_", "/")
    else:
        bad = next((c for c in text if not (c.isascii() and (c.isalnum() or c in "+/-_="))), "")
        if bad:
            detail = f"the character {bad!r} is not base64"
        elif "=" in text.rstrip("="):
            detail = "padding inside the text"
        else:
            detail = "it mixes two alphabets"
        raise EnvelopeError(f"is not valid base64: {detail}", where=where)
    body = std.rstrip("=")
    padded = body + "=" * (-len(body) % 4)
    if std != body and std != padded:
        raise EnvelopeError("is not valid base64: wrong padding", where=where)
    try:
        raw = base64.b64decode(padded.encode("ascii"), validate=True)
    except binascii.Error as exc:
        raise EnvelopeError(f"is not valid base64: {exc}", where=where) from None
    if base64.b64encode(raw).decode("ascii") != padded:
        raise EnvelopeError(
            "is not valid base64: not the canonical encoding (unused bits are set)", where=where
        )
    return raw


@dataclass(frozen=True, kw_only=True, slots=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...] = ()

    @property
    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def with_signature(self, signature: Signature) -> Envelope:
        return Envelope(
            payload_type=self.payload_type,
            payload=self.payload,
            signatures=(*self.signatures, signature),
        )

    def to_bytes(self) -> bytes:
        doc = {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str) -> Envelope:
        """Parse strictly: exactly the DSSE fields, each of the right type, within bounds.

        Sizes are checked before the JSON is parsed and the signature count before any
        signature is decoded, so a hostile envelope costs no more than a valid one.
        """
        if len(data) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(
                f"the envelope is {len(data)} bytes, more than the limit of {MAX_ENVELOPE_BYTES}",
                where=source,
                hint="re-create it with `qeguard sign`",
            )
        doc = loads_strict(data, where=source, what="envelope JSON")
        if not isinstance(doc, dict):
            raise EnvelopeError("must be a JSON object", where=source)
        extra = set(doc) - {"payload", "payloadType", "signatures"}
        if extra:
            raise EnvelopeError(f"unexpected field(s) {', '.join(sorted(extra))}", where=source)
        ptype = doc.get("payloadType")
        if not isinstance(ptype, str):
            raise EnvelopeError("payloadType must be a string", where=f"{source}: payloadType")
        sigs_raw = doc.get("signatures")
        if not isinstance(sigs_raw, list):
            raise EnvelopeError("signatures must be a list", where=f"{source}: signatures")
        if len(sigs_raw) > MAX_SIGNATURES:
            raise EnvelopeError(
                f"{len(sigs_raw)} signatures, more than the limit of {MAX_SIGNATURES}",
                where=f"{source}: signatures",
                hint="re-create it with `qeguard sign` and have each signer sign once",
            )
        payload_text = doc.get("payload")
        # base64 of at most MAX_PAYLOAD_BYTES bytes, so decoding is bounded too.
        if isinstance(payload_text, str) and len(payload_text) > (MAX_PAYLOAD_BYTES + 2) // 3 * 4:
            raise EnvelopeError(
                f"the payload is larger than the limit of {MAX_PAYLOAD_BYTES} bytes",
                where=f"{source}: payload",
                hint="re-create it with `qeguard sign`",
            )
        payload = b64decode_strict(payload_text, f"{source}: payload")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise EnvelopeError(
                f"the payload is larger than the limit of {MAX_PAYLOAD_BYTES} bytes",
                where=f"{source}: payload",
            )
        sigs: list[Signature] = []
        for i, s in enumerate(sigs_raw):
            where = f"{source}: signatures[{i}]"
            if not isinstance(s, dict) or set(s) - {"keyid", "sig"}:
                raise EnvelopeError("must be an object with `keyid` and `sig`", where=where)
            keyid = s.get("keyid", "")
            if not isinstance(keyid, str):
                raise EnvelopeError("keyid must be a string", where=f"{where}.keyid")
            if len(keyid) > MAX_KEYID_CHARS:
                raise EnvelopeError(
                    f"keyid is longer than {MAX_KEYID_CHARS} characters", where=f"{where}.keyid"
                )
            sig_text = s.get("sig")
            if isinstance(sig_text, str) and len(sig_text) > (MAX_SIGNATURE_BYTES + 2) // 3 * 4:
                raise EnvelopeError(
                    f"the signature is larger than the limit of {MAX_SIGNATURE_BYTES} bytes",
                    where=f"{where}.sig",
                )
            sigs.append(Signature(keyid=keyid, sig=b64decode_strict(sig_text, f"{where}.sig")))
        return cls(payload_type=ptype, payload=payload, signatures=tuple(sigs))
