"""The `[deps]` table of the policy, validated into a `DepsPolicy`.

```toml
[deps]
fail_on = "high"
require_pins = true
require_hashes = false
check_ranges = true
db_max_age_days = 1          # refresh the cached OSV database before a scan when older
unknown_severity = "unknown" # the severity of a vulnerability whose record has no rating
licenses = { allow = ["MIT", "BSD-3-Clause", "Apache-2.0"], deny = ["GPL-3.0-only"] }
ignore = [
  { id = "PYSEC-2023-74", reason = "not reachable: we never parse untrusted URLs",
    expires = 2025-06-30 },
]
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from qeguard.errors import ConfigError
from qeguard.report import Severity

_KEYS = {
    "fail_on",
    "ignore",
    "require_pins",
    "require_hashes",
    "licenses",
    "check_ranges",
    "outdated",
    "db_max_age_days",
    "unknown_severity",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Ignore:
    id: str
    reason: str
    expires: date | None = None
    index: int = 0

    def expired(self, today: date) -> bool:
        return self.expires is not None and self.expires < today


@dataclass(frozen=True, kw_only=True, slots=True)
class DepsPolicy:
    fail_on: Severity | None = None
    ignores: tuple[Ignore, ...] = ()
    require_pins: bool = False
    require_hashes: bool = False
    check_ranges: bool = True
    outdated: bool = True
    licenses_allow: tuple[str, ...] = ()
    licenses_deny: tuple[str, ...] = ()
    # A cached database confirmed current longer ago than this is refreshed before a scan.
    db_max_age_days: float = 1.0
    # What an unrated vulnerability counts as: `unknown` ranks with `high` (fails the
    # default fail_on); "low" lets it pass fail_on = "high"; "critical" fails any fail_on.
    unknown_severity: Severity = Severity.UNKNOWN
    source: str = "policy"

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None, *, where: str = "policy") -> DepsPolicy:
        """Validate `[deps]`; every problem is collected into one ConfigError."""
        table = table or {}
        errors: list[str] = []
        unknown = set(table) - _KEYS
        if unknown:
            errors.append(
                f"deps: unknown key(s) {', '.join(sorted(unknown))} (known: "
                f"{', '.join(sorted(_KEYS))})"
            )
        fail_on = None
        if "fail_on" in table:
            try:
                fail_on = Severity.parse(str(table["fail_on"]))
            except ConfigError as exc:
                errors.append(f"deps.fail_on: {exc.message}")
        flags: dict[str, bool] = {}
        for key, default in (
            ("require_pins", False),
            ("require_hashes", False),
            ("check_ranges", True),
            ("outdated", True),
        ):
            value = table.get(key, default)
            if not isinstance(value, bool):
                errors.append(f"deps.{key}: must be true or false (got {value!r})")
                value = default
            flags[key] = value
        max_age = table.get("db_max_age_days", 1.0)
        if isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age < 0:
            errors.append(f"deps.db_max_age_days: must be a number of days >= 0 (got {max_age!r})")
            max_age = 1.0
        unrated = Severity.UNKNOWN
        if "unknown_severity" in table:
            try:
                unrated = Severity.parse(str(table["unknown_severity"]))
            except ConfigError as exc:
                errors.append(f"deps.unknown_severity: {exc.message}")
        ignores = _ignores(table.get("ignore", []), errors)
        allow, deny = _licenses(table.get("licenses", {}), errors)
        if errors:
            raise ConfigError(
                "invalid [deps] policy:\n    " + "\n    ".join(errors),
                where=where,
                hint="see docs/deps.md, section Policy, for the [deps] keys",
            )
        return cls(
            fail_on=fail_on,
            ignores=ignores,
            licenses_allow=allow,
            licenses_deny=deny,
            db_max_age_days=float(max_age),
            unknown_severity=unrated,
            source=where,
            **flags,
        )

    def ignore_for(self, ids: frozenset[str]) -> Ignore | None:
        return next((i for i in self.ignores if i.id in ids), None)


def _ignores(raw: Any, errors: list[str]) -> tuple[Ignore, ...]:
    if not isinstance(raw, list):
        errors.append("deps.ignore: must be an array of tables")
        return ()
    out: list[Ignore] = []
    for i, item in enumerate(raw):
        where = f"deps.ignore[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: must be a table with id, reason and expires")
            continue
        bad = set(item) - {"id", "reason", "expires"}
        if bad:
            errors.append(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
        ident, reason = item.get("id"), item.get("reason")
        if not isinstance(ident, str) or not ident.strip():
            errors.append(
                f"{where}.id: required (an advisory id such as PYSEC-2023-74, GHSA-... or CVE-...)"
            )
            continue
        if not isinstance(reason, str) or not reason.strip():
            errors.append(f"{where}.reason: required: say why {ident} does not apply")
            continue
        expires = _date(item.get("expires"), f"{where}.expires", errors)
        out.append(Ignore(id=ident.strip(), reason=reason.strip(), expires=expires, index=i))
    return tuple(out)


def _date(value: Any, where: str, errors: list[str]) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    errors.append(f"{where}: must be a date like 2025-06-30 (got {value!r})")
    return None


def _licenses(raw: Any, errors: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not isinstance(raw, dict):
        errors.append("deps.licenses: must be a table with `allow` and/or `deny` lists")
        return (), ()
    bad = set(raw) - {"allow", "deny"}
    if bad:
        errors.append(f"deps.licenses: unknown key(s) {', '.join(sorted(bad))}")
    lists: list[tuple[str, ...]] = []
    for key in ("allow", "deny"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(f"deps.licenses.{key}: must be a list of license names")
            value = []
        lists.append(tuple(value))
    return lists[0], lists[1]
