"""The policy: tiers, their patterns and thresholds, and the dependency policy table.

A policy is TOML (`.qeguard/policy.toml`). It may `extends` a preset shipped in
`guard/policies/` and override tiers by name. Parsing is pure: bytes in, `Policy` out,
or a `ConfigError` naming the file and field.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qeguard.errors import ConfigError
from qeguard.integrity.layout import CONFIG_PATHS, MANIFEST_DIR, POLICY_PATH, QUARANTINE_DIR
from qeguard.report import Finding, Location, Severity
from qeguard.resources import read as read_resource
from qeguard.rules import RuleId

PRESETS = ("default", "strict", "qemlflow")
DEFAULT_EXPIRES_DAYS = 180
_TIER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class OnChange(enum.Enum):
    BLOCK = "block"
    WARN = "warn"


class Attribute(enum.Enum):
    CONTENT = "content"
    EXEC = "exec"
    KIND = "kind"


@dataclass(frozen=True, kw_only=True, slots=True)
class Tier:
    name: str
    patterns: tuple[str, ...]
    threshold: int
    on_change: OnChange = OnChange.BLOCK
    attributes: frozenset[Attribute] = frozenset(Attribute)
    severity: Severity | None = None

    @property
    def finding_severity(self) -> Severity:
        if self.severity is not None:
            return self.severity
        return Severity.HIGH if self.on_change is OnChange.BLOCK else Severity.LOW

    def to_canonical(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "patterns": list(self.patterns),
            "threshold": self.threshold,
            "on_change": self.on_change.value,
            "attributes": sorted(a.value for a in self.attributes),
            "severity": self.severity.value if self.severity else None,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    tiers: tuple[Tier, ...]
    fail_on: Severity = Severity.MEDIUM
    expires_days: int = DEFAULT_EXPIRES_DAYS
    # The raw `[deps]` table; `guard.deps.policy` gives it meaning.
    deps: Mapping[str, Any] = field(default_factory=dict)
    source: str = POLICY_PATH
    # The patterns the repository's policy file writes itself, by tier (not those a
    # preset brings): a pattern of these that matches no file is likely a typo.
    own_patterns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def tier(self, name: str) -> Tier:
        for t in self.tiers:
            if t.name == name:
                return t
        names = ", ".join(t.name for t in self.tiers)
        raise ConfigError(
            f"unknown tier {name!r}", where=self.source, hint=f"tiers in this policy: {names}"
        )

    @property
    def strictest(self) -> Tier:
        """The tier that guards the trust root: highest threshold, first on ties."""
        return max(self.tiers, key=lambda t: (t.threshold, -self.tiers.index(t)))

    def canonical(self) -> dict[str, Any]:
        return {
            "tiers": [t.to_canonical() for t in self.tiers],
            "fail_on": self.fail_on.value,
            "expires_days": self.expires_days,
            "deps": _jsonable(self.deps),
        }

    @property
    def sha256(self) -> str:
        """Digest of the *effective* policy (presets resolved), bound into every payload,
        so narrowing patterns, directly or through a preset, needs new signatures."""
        blob = json.dumps(
            self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    def matcher(self) -> TierMatcher:
        return TierMatcher(self)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)  # dates and floats: stable text form


class TierMatcher:
    """Assigns a repository path to its tier (first match wins) or None."""

    def __init__(self, policy: Policy):
        self._policy = policy
        self._strictest = policy.strictest.name
        self._tiers: list[tuple[str, _PatternSet]] = [
            (t.name, _PatternSet(t.patterns)) for t in policy.tiers
        ]

    def tier_of(self, path: str) -> str | None:
        if is_never_protected(path):
            return None
        if path in CONFIG_PATHS:
            return self._strictest
        for name, patterns in self._tiers:
            if patterns.matches(path):
                return name
        return None


def is_never_protected(path: str) -> bool:
    """The manifests (their signatures protect them), the quarantine and git's own folder."""
    return path.startswith((f"{MANIFEST_DIR}/", f"{QUARANTINE_DIR}/", ".git/")) or path == ".git"


class _PatternSet:
    """gitignore-style patterns (pathspec's `gitignore` dialect), last match wins.

    Without negations the patterns fold into one regular expression, which is what keeps
    tier assignment cheap on a 100,000-file tree.
    """

    def __init__(self, patterns: Sequence[str]):
        from pathspec import PathSpec

        self._spec = PathSpec.from_lines("gitignore", patterns)
        regexes: list[str] = []
        self._combined: re.Pattern[str] | None = None
        for p in self._spec.patterns:
            if p.include is None:
                continue
            if not p.include or p.regex is None:
                break
            regexes.append(p.regex.pattern.replace("(?P<ps_d>/)", "/"))
        else:
            if regexes:
                self._combined = re.compile("|".join(f"(?:{r})" for r in regexes))

    def matches(self, path: str) -> bool:
        if self._combined is not None:
            return self._combined.match(path) is not None
        return bool(self._spec.match_file(path))


def preset_text(name: str) -> str:
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset {name!r}", where="extends", hint=f"use one of: {', '.join(PRESETS)}"
        )
    return read_resource("policies", f"{name}.toml").decode("utf-8")


def parse_policy(text: str, *, source: str = POLICY_PATH) -> Policy:
    """Parse policy TOML, resolving `extends` (presets may extend presets)."""
    table = _load_toml(text, source)
    texts: dict[str, str] = {source: text}
    merged, origins = _resolve_extends(table, source, seen=(), texts=texts)
    policy = _from_table(merged, source, _Places(source=source, texts=texts, origins=origins))
    # The patterns the user wrote (not a preset's): only those can be typos worth a warning.
    own = {
        t["name"]: tuple(p for p in t["patterns"] if isinstance(p, str))
        for t in table.get("tiers", [])
        if isinstance(t, dict) and isinstance(t.get("name"), str) and "patterns" in t
        if isinstance(t["patterns"], list)
    }
    return dataclasses.replace(policy, own_patterns=own)


# Where a merged tier came from: (source, its index among that source's own [[tiers]]).
_Origin = tuple[str, int]
_TABLE_HEADER = re.compile(r"\s*\[")
_TIERS_HEADER = re.compile(r"\s*\[\[\s*tiers\s*\]\]")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Places:
    """Names a field the way the user wrote it: their own `tiers[1]` and its line, not
    the index of the merged, preset-extended list."""

    source: str
    texts: Mapping[str, str]
    origins: Sequence[_Origin]

    def tier(self, index: int, key: str | None = None) -> str:
        src, own = self.origins[index] if index < len(self.origins) else (self.source, index)
        field = f"tiers[{own}]" + (f".{key}" if key else "")
        line = _tier_line(self.texts.get(src, ""), own, key)
        where = f"line {line}: {field}" if line else field
        return where if src == self.source else f"{src}, {where}"

    def top(self, key: str) -> str:
        lines = self.texts.get(self.source, "").splitlines()
        for n, line in enumerate(lines, 1):
            if _TABLE_HEADER.match(line):
                break
            if re.match(rf"\s*{re.escape(key)}\s*=", line):
                return f"line {n}: {key}"
        return key


def _tier_line(text: str, own: int, key: str | None) -> int | None:
    """The line of the `own`-th [[tiers]] header in `text`, or of `key` inside it."""
    lines = text.splitlines()
    headers = [n for n, line in enumerate(lines) if _TIERS_HEADER.match(line)]
    if own >= len(headers):
        return None
    start = headers[own]
    if key is not None:
        for n in range(start + 1, len(lines)):
            if _TABLE_HEADER.match(lines[n]):
                break
            if re.match(rf"\s*{re.escape(key)}\s*=", lines[n]):
                return n + 1
    return start + 1


def _load_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"malformed TOML: {exc}",
            where=source,
            hint="fix the syntax; `qeguard init --force` writes a fresh policy",
        ) from None


def _resolve_extends(
    table: dict[str, Any], source: str, seen: tuple[str, ...], texts: dict[str, str]
) -> tuple[dict[str, Any], list[_Origin]]:
    base_name = table.get("extends")
    if base_name is None:
        own = table.get("tiers")
        return table, [(source, i) for i in range(len(own) if isinstance(own, list) else 0)]
    if not isinstance(base_name, str):
        raise ConfigError(
            "`extends` must be a preset name",
            where=f"{source}: extends",
            hint=f"use one of: {', '.join(PRESETS)}",
        )
    if base_name in seen:
        raise ConfigError(f"`extends` loops through {base_name!r}", where=f"{source}: extends")
    base_source = f"preset {base_name}"
    texts[base_source] = preset_text(base_name)
    base, origins = _resolve_extends(
        _load_toml(texts[base_source], base_source), base_source, (*seen, base_name), texts
    )
    return _merge(base, table, source, origins)


def _merge(
    base: dict[str, Any], over: dict[str, Any], source: str, origins: list[_Origin]
) -> tuple[dict[str, Any], list[_Origin]]:
    merged = {k: v for k, v in base.items() if k != "extends"}
    origins = list(origins)
    for key, value in over.items():
        if key == "extends":
            continue
        if key == "tiers":
            merged["tiers"] = _merge_tiers(base.get("tiers", []), value, source, origins)
        elif key == "deps" and isinstance(value, dict):
            merged["deps"] = {**base.get("deps", {}), **value}
        else:
            merged[key] = value
    return merged, origins


def _merge_tiers(base: list[Any], over: Any, source: str, origins: list[_Origin]) -> list[Any]:
    """The preset's tiers updated by the user's; `origins` follows (an overridden tier is
    the user's entry from then on: that is where they can fix it)."""
    if not isinstance(over, list):
        raise ConfigError(
            "`tiers` must be an array of tables ([[tiers]])", where=f"{source}: tiers"
        )
    out = [dict(t) for t in base]
    index = {t.get("name"): i for i, t in enumerate(out)}
    for i, tier in enumerate(over):
        if not isinstance(tier, dict) or "name" not in tier:
            raise ConfigError("each [[tiers]] entry needs a `name`", where=f"{source}: tiers[{i}]")
        if tier["name"] in index:
            out[index[tier["name"]]].update(tier)
            origins[index[tier["name"]]] = (source, i)
        else:
            index[tier["name"]] = len(out)
            out.append(dict(tier))
            origins.append((source, i))
    return out


_TOP_KEYS = {"tiers", "fail_on", "expires_days", "deps", "extends"}
_TIER_KEYS = {"name", "patterns", "threshold", "on_change", "attributes", "severity"}


def _from_table(table: Mapping[str, Any], source: str, places: _Places) -> Policy:
    errors: list[str] = []
    unknown = set(table) - _TOP_KEYS
    if unknown:
        errors.append(
            f"unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_TOP_KEYS))})"
        )
    raw_tiers = table.get("tiers")
    tiers: list[Tier] = []
    if not isinstance(raw_tiers, list) or not raw_tiers:
        errors.append("tiers: at least one [[tiers]] table is required")
        raw_tiers = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_tiers):
        tier = _tier(raw, functools.partial(places.tier, i), errors)
        if tier is None:
            continue
        if tier.name in seen:
            errors.append(f"{places.tier(i, 'name')}: duplicate tier {tier.name!r}")
        seen.add(tier.name)
        tiers.append(tier)
    fail_on = Severity.MEDIUM
    if "fail_on" in table:
        try:
            fail_on = Severity.parse(str(table["fail_on"]), where=f"{source}: fail_on")
        except ConfigError as exc:
            errors.append(f"{places.top('fail_on')}: {exc.message}")
    expires_days = table.get("expires_days", DEFAULT_EXPIRES_DAYS)
    if not isinstance(expires_days, int) or isinstance(expires_days, bool) or expires_days < 1:
        errors.append(f"{places.top('expires_days')}: must be a positive whole number of days")
        expires_days = DEFAULT_EXPIRES_DAYS
    deps = table.get("deps", {})
    if not isinstance(deps, dict):
        errors.append(f"{places.top('deps')}: must be a table ([deps])")
        deps = {}
    if errors:
        raise ConfigError(
            "invalid policy:\n    " + "\n    ".join(errors),
            where=source,
            hint="see docs/policy.md for the keys and their values",
        )
    return Policy(
        tiers=tuple(tiers), fail_on=fail_on, expires_days=expires_days, deps=deps, source=source
    )


def _tier(raw: Any, at: Callable[[str | None], str], errors: list[str]) -> Tier | None:
    if not isinstance(raw, dict):
        errors.append(f"{at(None)}: must be a table")
        return None
    bad = set(raw) - _TIER_KEYS
    if bad:
        errors.append(f"{at(None)}: unknown key(s) {', '.join(sorted(bad))}")
    name = raw.get("name")
    if not isinstance(name, str) or not _TIER_NAME.match(name):
        errors.append(
            f"{at('name')}: must be lower-case letters, digits, '-' or '_' (got {name!r})"
        )
        return None
    patterns = raw.get("patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        errors.append(f"{at('patterns')}: must be a list of non-empty strings")
        patterns = []
    threshold = raw.get("threshold", 1)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
        errors.append(f"{at('threshold')}: must be a whole number >= 0 (got {threshold!r})")
        threshold = 1
    try:
        on_change = OnChange(raw.get("on_change", "block"))
    except ValueError:
        errors.append(
            f"{at('on_change')}: must be 'block' or 'warn' (got {raw.get('on_change')!r})"
        )
        on_change = OnChange.BLOCK
    attrs_raw = raw.get("attributes", [a.value for a in Attribute])
    attributes: set[Attribute] = set()
    if not isinstance(attrs_raw, list):
        attrs_raw = []
        errors.append(f"{at('attributes')}: must be a list")
    for a in attrs_raw:
        try:
            attributes.add(Attribute(a))
        except ValueError:
            errors.append(
                f"{at('attributes')}: unknown attribute {a!r} (known: content, exec, kind)"
            )
    severity = None
    if "severity" in raw:
        try:
            severity = Severity.parse(str(raw["severity"]))
        except ConfigError as exc:
            errors.append(f"{at('severity')}: {exc.message}")
    return Tier(
        name=name,
        patterns=tuple(patterns),
        threshold=threshold,
        on_change=on_change,
        attributes=frozenset(attributes),
        severity=severity,
    )


def tier_names(policy: Policy) -> Iterable[str]:
    return (t.name for t in policy.tiers)


def load_policy(root: Path, *, required: bool = True) -> Policy | None:
    """The working tree's policy (for commands that only read settings, such as `deps`),
    or None when there is none and `required` is False. Never a source of trust."""
    from qeguard.integrity.layout import reject_custom_location

    reject_custom_location(root)
    path = root / POLICY_PATH
    if not path.is_file():
        if not required:
            return None
        raise ConfigError(
            "no policy found",
            where=POLICY_PATH,
            hint="run `qeguard init --preset default` (or qemlflow, strict)",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the policy: {exc}", where=POLICY_PATH) from None
    return parse_policy(text, source=POLICY_PATH)


def unmatched_patterns(policy: Policy, paths: Iterable[str]) -> dict[str, list[str]]:
    """Of the patterns the policy file writes itself, those that match none of `paths`,
    by tier. One pass over the paths with every pattern still unmatched folded into one
    regular expression, so a 100,000-file tree costs one match per path, not one per
    path and pattern."""
    pending: dict[str, tuple[str, str]] = {}  # group name -> (tier, pattern)
    regexes: dict[str, str] = {}
    from pathspec import PathSpec

    for tier, patterns in policy.own_patterns.items():
        for pattern in patterns:
            compiled = PathSpec.from_lines("gitignore", [pattern]).patterns
            if not compiled or compiled[0].include is not True or compiled[0].regex is None:
                continue  # a negation or a comment matches nothing by design
            name = f"p{len(pending)}"
            pending[name] = (tier, pattern)
            regexes[name] = compiled[0].regex.pattern.replace("(?P<ps_d>/)", "/")

    def combined() -> re.Pattern[str] | None:
        if not regexes:
            return None
        return re.compile("|".join(f"(?P<{n}>{r})" for n, r in regexes.items()))

    regex = combined()
    for path in paths:
        if regex is None:
            break
        if is_never_protected(path):
            continue
        m = regex.match(path)
        while m is not None:
            # This path proves its pattern matches: drop it and look again, since the
            # same path may be the first match of another pending pattern too.
            regexes.pop(m.lastgroup or "", None)
            regex = combined()
            m = regex.match(path) if regex is not None else None
    out: dict[str, list[str]] = {}
    for name in regexes:
        tier, pattern = pending[name]
        out.setdefault(tier, []).append(pattern)
    return out


def policy_findings(
    policy: Policy, trusted_keys: Mapping[str, int], paths: Iterable[str] | None
) -> list[Finding]:
    """Where the policy cannot work as written: a tier needing more distinct signers than
    are trusted for it (no signature can ever meet it), and, given the tree's `paths`,
    a pattern of the policy file that matches no file (a typo leaves files unprotected).

    `trusted_keys` is the number of distinct keys trusted for each tier now. Warnings
    (LOW): the threshold check itself blocks where it must.
    """
    out: list[Finding] = []
    for tier in policy.tiers:
        keys = trusted_keys.get(tier.name, 0)
        if tier.threshold > keys:
            out.append(
                Finding(
                    rule=RuleId.SIG_UNREACHABLE,
                    severity=Severity.LOW,
                    title="Threshold cannot be met",
                    message=f"tier {tier.name!r} needs {tier.threshold} distinct signer(s) "
                    f"but {keys} key(s) are trusted for it",
                    location=Location(path=policy.source.split(" ")[0]),
                    tier=tier.name,
                    fix=f"trust more signers (qeguard trust add NAME KEY.pub --tiers "
                    f"{tier.name}) or lower the tier's threshold",
                    details={"threshold": tier.threshold, "trusted_keys": keys},
                )
            )
    if paths is not None:
        for tier_name, patterns in unmatched_patterns(policy, paths).items():
            for pattern in patterns:
                out.append(
                    Finding(
                        rule=RuleId.INT_UNMATCHED,
                        severity=Severity.LOW,
                        title="Pattern matches no file",
                        message=f"pattern {pattern!r} matches no file in the tree "
                        f"(tier {tier_name!r})",
                        location=Location(path=policy.source.split(" ")[0]),
                        tier=tier_name,
                        fix="check the pattern for a typo (gitignore syntax: `src/*/core/**`)",
                        details={"id": pattern},
                    )
                )
    return out
