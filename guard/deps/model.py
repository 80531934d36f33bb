"""The dependency scanner's data: what a source yields and what a database says about it.

Everything here is a frozen value. Sources turn files into `Dependency` values that remember
where they came from; databases and services turn a name and version into `Advisory`
values; `guard.deps.scan` joins the two into report findings.
"""

from __future__ import annotations

import enum
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from packaging.markers import InvalidMarker, Marker, default_environment
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from qeguard.errors import InputError
from qeguard.report import OSV_URL, Severity


class DepsInputError(InputError):
    """A dependency input is malformed; `where` is `file:line`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Dependency:
    """One dependency as declared or locked, with the file and line it came from.

    `version` is set only when the source fixes one exact version (an `==` pin, a lock
    entry, an installed distribution); a range lives in `specifier`. `unscannable` says
    why a dependency has no version to look up (a URL, a path, an editable install).
    """

    name: str
    source: str
    line: int | None = None
    version: str | None = None
    specifier: str = ""
    hashes: tuple[str, ...] = ()
    markers: str | None = None
    extras: tuple[str, ...] = ()
    group: str | None = None
    unscannable: str | None = None
    # "requirements", "pyproject", "uv.lock", ... : decides what `--fix` may rewrite.
    kind: str = "requirements"
    license: str | None = None

    @property
    def canonical_name(self) -> str:
        return canonicalize_name(self.name)

    @property
    def is_pinned(self) -> bool:
        return self.version is not None

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


class SeveritySource(enum.Enum):
    """Where a vulnerability's severity came from (`details.severity_source` of a finding)."""

    CVSS_V3 = "cvss_v3"
    CVSS_V4 = "cvss_v4"
    GHSA = "ghsa"  # GitHub's database_specific.severity (a name, no score)
    NONE = "none"  # the record has no rating: severity `unknown`


@dataclass(frozen=True, kw_only=True, slots=True)
class Rating:
    """A record's severity and what it was computed from."""

    severity: Severity = Severity.UNKNOWN
    vector: str | None = None  # the CVSS vector, when scored from one
    score: float | None = None  # the CVSS base score
    source: SeveritySource = SeveritySource.NONE

    @property
    def sort_key(self) -> tuple[bool, int, float]:
        """Rated before unrated, then by severity, then by score."""
        return (
            self.source is not SeveritySource.NONE,
            self.severity.rank,
            self.score or 0.0,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Advisory:
    """One vulnerability affecting one package version, aliases already merged."""

    id: str
    aliases: frozenset[str] = frozenset()
    summary: str = ""  # one line
    description: str = ""  # the record's full text
    fix_versions: tuple[str, ...] = ()
    rating: Rating = field(default_factory=Rating)
    published: str | None = None

    @property
    def ids(self) -> frozenset[str]:
        return self.aliases | {self.id}

    @property
    def severity(self) -> Severity:
        return self.rating.severity

    @property
    def cvss(self) -> str | None:
        return self.rating.vector

    @property
    def url(self) -> str:
        return OSV_URL + self.id


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetEnvironment:
    """The environment markers are evaluated for (defaults to the running interpreter)."""

    values: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def current(cls) -> TargetEnvironment:
        return cls(values={k: str(v) for k, v in default_environment().items()})

    @classmethod
    def for_target(
        cls, python: str | None = None, platform_name: str | None = None
    ) -> TargetEnvironment:
        """The running environment with the Python version and/or platform replaced.

        `python` is `3.12` or `3.12.4`; `platform_name` is a `sys.platform` value
        (`linux`, `win32`, `darwin`), from which `platform_system` and `os_name` follow.
        """
        env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
        if python:
            parts = python.split(".")
            if len(parts) < 2 or not all(p.isdigit() for p in parts):
                raise InputError(
                    f"invalid --target-python {python!r}", hint="use a version like 3.12 or 3.12.4"
                )
            env["python_version"] = ".".join(parts[:2])
            env["python_full_version"] = python if len(parts) > 2 else f"{python}.0"
        if platform_name:
            systems = {
                "linux": ("Linux", "posix"),
                "win32": ("Windows", "nt"),
                "darwin": ("Darwin", "posix"),
            }
            if platform_name not in systems:
                raise InputError(
                    f"invalid --target-platform {platform_name!r}",
                    hint="use one of: linux, win32, darwin",
                )
            env["sys_platform"] = platform_name
            env["platform_system"], env["os_name"] = systems[platform_name]
        return cls(values=env)

    def evaluate(self, marker: str | None, *, where: str, extras: tuple[str, ...] = ()) -> bool:
        if not marker:
            return True
        try:
            # Cached: a large requirements file repeats the same few markers.
            return _evaluate(marker, tuple(sorted(self.values.items())), extras)
        except InvalidMarker as exc:
            raise DepsInputError(
                f"invalid environment marker {marker!r}: {exc}",
                where=where,
                hint="see PEP 508 for the marker syntax",
            ) from None


@lru_cache(maxsize=1024)
def _evaluate(marker: str, values: tuple[tuple[str, str], ...], extras: tuple[str, ...]) -> bool:
    parsed = Marker(marker)
    env = dict(values)
    if not extras:
        return parsed.evaluate({**env, "extra": ""})
    return any(parsed.evaluate({**env, "extra": e}) for e in extras)


def running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor} ({platform.system()})"


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def exact_version(specifier: str | SpecifierSet) -> str | None:
    """The single version a specifier allows (`==1.2.3`, `===1.2.3`), else None."""
    if isinstance(specifier, SpecifierSet):
        spec = specifier
    else:
        try:
            spec = SpecifierSet(specifier)
        except InvalidSpecifier:
            return None
    items = list(spec)
    if len(items) != 1:
        return None
    only = items[0]
    if only.operator == "===" or (only.operator == "==" and "*" not in only.version):
        return only.version
    return None
