"""DSSE v1 envelopes and canonical JSON: the only place signed bytes are produced or parsed.

Spec: secure-systems-lab/dsse, envelope.md and protocol.md. Signatures cover the
pre-authentication encoding (PAE), never the JSON of the envelope, so white space or key
order in the envelope file cannot change what was signed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qeguard.errors import EnvelopeError

PAYLOAD_TYPE = "application/vnd.qeguard.manifest+json"


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


def b64decode_strict(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise EnvelopeError("must be a base64 string", where=where)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        try:  # DSSE allows URL-safe base64 too
            return base64.urlsafe_b64decode(text.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise EnvelopeError("is not valid base64", where=where) from None


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
        """Parse strictly: exactly the DSSE fields, each of the right type."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EnvelopeError(
                f"not valid JSON: {exc}", where=source, hint="re-create it with `qeguard sign`"
            ) from None
        if not isinstance(doc, dict):
            raise EnvelopeError("must be a JSON object", where=source)
        extra = set(doc) - {"payload", "payloadType", "signatures"}
        if extra:
            raise EnvelopeError(f"unexpected field(s) {', '.join(sorted(extra))}", where=source)
        ptype = doc.get("payloadType")
        if not isinstance(ptype, str):
            raise EnvelopeError("payloadType must be a string", where=f"{source}: payloadType")
        payload = b64decode_strict(doc.get("payload"), f"{source}: payload")
        sigs_raw = doc.get("signatures")
        if not isinstance(sigs_raw, list):
            raise EnvelopeError("signatures must be a list", where=f"{source}: signatures")
        sigs: list[Signature] = []
        for i, s in enumerate(sigs_raw):
            where = f"{source}: signatures[{i}]"
            if not isinstance(s, dict) or set(s) - {"keyid", "sig"}:
                raise EnvelopeError("must be an object with `keyid` and `sig`", where=where)
            keyid = s.get("keyid", "")
            if not isinstance(keyid, str):
                raise EnvelopeError("keyid must be a string", where=f"{where}.keyid")
            sigs.append(Signature(keyid=keyid, sig=b64decode_strict(s.get("sig"), f"{where}.sig")))
        return cls(payload_type=ptype, payload=payload, signatures=tuple(sigs))
