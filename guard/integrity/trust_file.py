"""Editing trust.toml in place: `trust add`, `trust remove` and `init --force` change only
the signer they name, so the file's comments, order and layout survive (tomlkit).

Parsing and counting signers stay in `trust.py`; this module writes text only.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

import tomlkit
from qeguard.integrity.trust import Signer
from tomlkit.items import AoT, Array, Table


def _signers(doc: tomlkit.TOMLDocument) -> AoT | None:
    item = doc.get("signers")
    return item if isinstance(item, AoT) else None


def _tiers_array(tiers: Collection[str]) -> Array:
    array = tomlkit.array()
    array.extend(sorted(tiers))
    return array


def _when(when: datetime) -> datetime:
    return when.astimezone(UTC)


def _fill(table: Table, signer: Signer) -> None:
    table["name"] = signer.name
    table["key"] = signer.key.openssh
    table["tiers"] = _tiers_array(signer.tiers)
    for field, value in (
        ("valid_after", signer.valid_after),
        ("valid_before", signer.valid_before),
    ):
        if value is not None:
            table[field] = _when(value)
        elif field in table:
            del table[field]


def add_signer(text: str, signer: Signer) -> str:
    """`text` with `signer` added, or (same name) its table updated in place."""
    doc = tomlkit.parse(text)
    signers = _signers(doc)
    if signers is not None:
        for table in signers:
            if table.get("name") == signer.name:
                _fill(table, signer)
                return tomlkit.dumps(doc)
    table = tomlkit.table()
    _fill(table, signer)
    if signers is None:
        signers = tomlkit.aot()
        signers.append(table)
        doc.append("signers", signers)
    else:
        if len(signers) and not signers[-1].as_string().endswith("\n\n"):
            signers[-1].add(tomlkit.nl())  # a blank line between tables, as written by hand
        signers.append(table)
    return tomlkit.dumps(doc)


def remove_signer(text: str, name: str) -> str:
    """`text` without the signer called `name` (everything else kept)."""
    doc = tomlkit.parse(text)
    signers = _signers(doc)
    if signers is not None:
        for i, table in enumerate(signers):
            if table.get("name") == name:
                del signers[i]
                break
        if not len(signers):
            del doc["signers"]
    # The blank line `add_signer` put before a later table is not left dangling at the end.
    return tomlkit.dumps(doc).rstrip("\n") + "\n"


def keep_tiers(text: str, known: Collection[str]) -> tuple[str, dict[str, list[str]]]:
    """`text` with tier names outside `known` dropped from every signer (`*` stays), and
    what was dropped per signer. A new policy can remove tiers; trust naming them would
    make every command fail."""
    doc = tomlkit.parse(text)
    dropped: dict[str, list[str]] = {}
    for table in _signers(doc) or ():
        tiers = table.get("tiers")
        if not isinstance(tiers, list):
            continue
        gone = [t for t in tiers if isinstance(t, str) and t != "*" and t not in known]
        if gone:
            dropped[str(table.get("name"))] = gone
            table["tiers"] = _tiers_array([t for t in tiers if t not in gone])
    return tomlkit.dumps(doc), dropped
