"""Latest releases from the package index's JSON API (`/pypi/<name>/json`, as pip-audit's
PyPI service reads it), for the `--online` outdated-pin check.

The check is advisory: a lookup that fails after its retries is reported, never raised,
so a flaky index cannot fail a scan. The index is `$QEGUARD_PYPI_URL` when set (a mirror,
or a local server in tests), else https://pypi.org.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

DEFAULT_URL = "https://pypi.org"
ENV_URL = "QEGUARD_PYPI_URL"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def index_url(url: str | None = None) -> str:
    return (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")


@dataclass(frozen=True, kw_only=True, slots=True)
class LatestReleases:
    latest: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    not_found: tuple[str, ...] = ()  # not on the index (private or misspelt packages)
    failed: dict[str, str] = field(default_factory=dict)  # name -> why, after every retry


class _Lookup:
    def __init__(
        self, base: str, timeout: float, attempts: int, sleep: Callable[[float], None]
    ) -> None:
        self.base = base
        self.timeout = timeout
        self.attempts = attempts
        self.sleep = sleep
        # requests.Session is not documented as thread-safe: one per worker thread.
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Accept"] = "application/json"
            self._local.session = session
        return session

    def __call__(self, name: str) -> tuple[str, str | None, str | None]:
        """(name, latest version or None when not on the index, failure reason or None)."""
        url = f"{self.base}/pypi/{name}/json"
        why = "no attempt made"
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(0.5 * 2 ** (attempt - 1))  # 0.5 s, 1 s, ...
            try:
                response = self._session().get(url, timeout=self.timeout)
            except requests.RequestException as exc:
                why = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code == 404:
                return name, None, None
            if response.status_code in _RETRY_STATUS:
                why = f"HTTP {response.status_code}"
                continue
            if response.status_code != 200:
                return name, None, f"HTTP {response.status_code}"
            try:
                version = response.json()["info"]["version"]
            except (ValueError, KeyError, TypeError):
                return name, None, "malformed JSON from the index"
            if not isinstance(version, str) or not version:
                return name, None, "no version in the index's answer"
            return name, version, None
        return name, None, why


def latest_releases(
    names: Iterable[str],
    *,
    url: str | None = None,
    timeout: float = 10.0,
    attempts: int = 3,
    workers: int = 8,
    sleep: Callable[[float], None] = time.sleep,
) -> LatestReleases:
    """The latest release of each (canonical) name; lookups run `workers` at a time."""
    fetch = _Lookup(index_url(url), timeout, attempts, sleep)
    latest: dict[str, str] = {}
    not_found: list[str] = []
    failed: dict[str, str] = {}
    unique = sorted(set(names))
    if not unique:
        return LatestReleases()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
        for name, version, why in pool.map(fetch, unique):
            if why is not None:
                failed[name] = why
            elif version is None:
                not_found.append(name)
            else:
                latest[name] = version
    return LatestReleases(latest=latest, not_found=tuple(not_found), failed=failed)
