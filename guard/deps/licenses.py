"""Licenses as SPDX expressions, and the `[deps.licenses]` allow/deny decision.

Expressions are parsed by `license-expression` (the SPDX library that
cyclonedx-python-lib also uses); Trove classifiers are mapped to SPDX ids where the
classifier names one license. `A OR B` lets the user choose, so it is allowed when any
one choice is; `A AND B` needs every part allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from license_expression import Licensing

# Trove classifier (after "License :: ") -> SPDX id, only where it names one license.
# "Apache Software License" names no version; every current use is Apache-2.0.
# Classifiers that name a family ("BSD License", "GNU General Public License (GPL)",
# "Public Domain", "Other/Proprietary License") are left as text: the policy can list
# them by name.
CLASSIFIERS: dict[str, str] = {
    "OSI Approved :: MIT License": "MIT",
    "OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "OSI Approved :: Apache Software License": "Apache-2.0",
    "OSI Approved :: ISC License (ISCL)": "ISC",
    "OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "OSI Approved :: Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "OSI Approved :: GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "OSI Approved :: GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "OSI Approved :: GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)": (
        "LGPL-2.0-or-later"
    ),
    "OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "OSI Approved :: GNU Lesser General Public License v3 or later (LGPLv3+)": (
        "LGPL-3.0-or-later"
    ),
    "OSI Approved :: GNU Affero General Public License v3": "AGPL-3.0-only",
    "OSI Approved :: GNU Affero General Public License v3 or later (AGPLv3+)": (
        "AGPL-3.0-or-later"
    ),
    "OSI Approved :: Eclipse Public License 1.0 (EPL-1.0)": "EPL-1.0",
    "OSI Approved :: Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "OSI Approved :: European Union Public Licence 1.1 (EUPL 1.1)": "EUPL-1.1",
    "OSI Approved :: European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "OSI Approved :: Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "OSI Approved :: Universal Permissive License (UPL)": "UPL-1.0",
    "OSI Approved :: zlib/libpng License": "Zlib",
    "OSI Approved :: Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "OSI Approved :: Apple Public Source License": "APSL-2.0",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}

# Free-text `License:` values that name one SPDX license but are not its id.
_TEXT = {
    "mit license": "MIT",
    "the mit license": "MIT",
    "apache 2.0": "Apache-2.0",
    "apache 2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "apache software license 2.0": "Apache-2.0",
    "bsd 3-clause": "BSD-3-Clause",
    "bsd-3": "BSD-3-Clause",
    "3-clause bsd": "BSD-3-Clause",
    "bsd 2-clause": "BSD-2-Clause",
    "isc license": "ISC",
    "mpl 2.0": "MPL-2.0",
}


@lru_cache(maxsize=1)
def _licensing() -> Licensing:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


@lru_cache(maxsize=4096)
def spdx(text: str) -> str | None:
    """`text` as a normalized SPDX expression (`mit` -> `MIT`), or None if it is not one."""
    from license_expression import ExpressionError

    text = text.strip()
    if not text:
        return None
    mapped = _TEXT.get(text.lower())
    if mapped:
        return mapped
    try:
        parsed = _licensing().parse(text, validate=True, strict=True)
    except (ExpressionError, ValueError, TypeError):
        return None
    return None if parsed is None else str(parsed)


def from_classifiers(classifiers: Iterable[str]) -> str | None:
    """The SPDX expression the license classifiers state (several are joined with OR: a
    package listing two licenses offers both), or None if any names no single license."""
    ids: list[str] = []
    for c in classifiers:
        if not c.startswith("License ::"):
            continue
        mapped = CLASSIFIERS.get(c.removeprefix("License ::").strip())
        if mapped is None:
            return None
        if mapped not in ids:
            ids.append(mapped)
    return " OR ".join(ids) or None


def classifier_names(classifiers: Iterable[str]) -> list[str]:
    return [c.split(" :: ")[-1] for c in classifiers if c.startswith("License ::")]


def _choices(expression: str) -> list[list[tuple[str, str]]]:
    """The expression in disjunctive normal form: each choice is a list of
    (full key, base license key) pairs that must all be accepted."""
    from license_expression import AND, OR, LicenseSymbol, LicenseWithExceptionSymbol

    lic = _licensing()
    dnf = lic.dnf(lic.parse(expression))

    def term(node: Any) -> list[tuple[str, str]]:
        if isinstance(node, LicenseWithExceptionSymbol):
            base = str(node.license_symbol.key)
            return [(f"{base} WITH {node.exception_symbol.key}", base)]
        if isinstance(node, LicenseSymbol):
            return [(str(node.key), str(node.key))]
        if isinstance(node, AND):
            return [pair for arg in node.args for pair in term(arg)]
        raise ValueError(f"unexpected {type(node).__name__} in {expression!r}")

    if isinstance(dnf, OR):
        return [term(arg) for arg in dnf.args]
    return [term(dnf)]


def decide(license_text: str, allow: Sequence[str], deny: Sequence[str]) -> str | None:
    """Why `license_text` is not allowed by the policy, or None when it is.

    An SPDX expression is allowed when one of its OR choices has no denied license and,
    with an allow list, only allowed ones. Text that is not SPDX (e.g. the classifier
    "BSD License") is matched by name against the lists, case-insensitively."""
    allow_keys = {(spdx(a) or a).lower() for a in allow}
    deny_keys = {(spdx(d) or d).lower() for d in deny}
    expression = spdx(license_text)
    if expression is None:
        name = license_text.strip().lower()
        if name in deny_keys:
            return f"{license_text!r} is on the deny list"
        if allow_keys and name not in allow_keys:
            return f"{license_text!r} is not an SPDX license expression and not on the allow list"
        return None
    denied_everywhere = True
    for choice in _choices(expression):
        denied = any(
            full.lower() in deny_keys or base.lower() in deny_keys for full, base in choice
        )
        if denied:
            continue
        denied_everywhere = False
        if not allow_keys or all(
            full.lower() in allow_keys or base.lower() in allow_keys for full, base in choice
        ):
            return None
    if denied_everywhere:
        return f"{expression!r} is on the deny list (every choice includes a denied license)"
    return f"{expression!r} is not on the allow list"
