"""Fresh vulnerability data: download OSV's PyPI export, and refresh it before a scan.

`update_database` streams the archive to a temp file beside the stored database (never
into memory), sends the validators of the last download so an unchanged database costs
one round trip (304), caps the download's size and time, and installs it only after
every record was checked (`database.install`): on any failure the previous database is
kept. `refresh` is what a scan calls: it updates a database older than the policy's
`db_max_age_days` and never fails the scan; a failed refresh is a note for the report.

Uses the standard library's HTTP client, imported only to download: a scan must not pay
for importing requests (or even urllib) when the stored database is current.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import qeguard
from qeguard.deps.database import (
    DatabaseMeta,
    OsvDatabase,
    install,
    read_user_meta,
    user_db_path,
    write_user_meta,
)
from qeguard.errors import DatabaseError, UsageError
from qeguard.hints import DEFAULT

OSV_PYPI_ZIP = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"
URL_ENV = "QEGUARD_DB_URL"
OFFLINE_ENV = "QEGUARD_OFFLINE"
# OSV's PyPI export is tens of MB; a tenfold margin, and a tampered server cannot fill
# the disk.
MAX_DOWNLOAD_BYTES = 1 << 30
DEFAULT_MAX_AGE_DAYS = 1.0
CHUNK = 1 << 20
_IMPORT = DEFAULT.qeguard("db", "import", "all.zip")  # what to run without a network

Progress = Callable[[int, int | None], None]  # (bytes so far, total if known)


def database_url(url: str | None = None) -> str:
    """`url`, else `$QEGUARD_DB_URL`, else OSV's PyPI export."""
    return url or os.environ.get(URL_ENV) or OSV_PYPI_ZIP


def offline_from_env() -> bool:
    """`QEGUARD_OFFLINE=1` (or true/yes) forbids network use, like `--offline`."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, kw_only=True, slots=True)
class UpdateResult:
    changed: bool  # False: the server answered 304, the stored database is current
    db: OsvDatabase | None  # the installed database (None when unchanged)
    url: str
    downloaded: int = 0  # bytes
    skipped: tuple[str, ...] = ()  # malformed records left out, `member: reason`


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    timeout: float = 60.0  # seconds without a byte before giving up
    max_seconds: float = 900.0  # the whole download
    max_bytes: int = MAX_DOWNLOAD_BYTES


def update_database(
    *,
    url: str | None = None,
    limits: Limits = Limits(),
    progress: Progress | None = None,
    force: bool = False,
) -> UpdateResult:
    """Download and install the database; a DatabaseError names what failed, and the
    previous database stays in use."""
    if offline_from_env():
        raise UsageError(
            "offline mode ($QEGUARD_OFFLINE) forbids downloading the database",
            hint=f"unset {OFFLINE_ENV}, or import a file: `{_IMPORT}`",
        )
    url = database_url(url)
    meta = read_user_meta()
    same = meta is not None and meta.source == url and not force
    headers = {"User-Agent": f"qeguard/{qeguard.__version__}"}
    if same and meta is not None:
        if meta.etag:
            headers["If-None-Match"] = meta.etag
        if meta.last_modified:
            headers["If-Modified-Since"] = meta.last_modified
    folder = user_db_path().parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download.", suffix=".zip.tmp", dir=folder)
    os.close(fd)
    staged = Path(tmp)
    try:
        fetched = _download(url, staged, headers=headers, limits=limits, progress=progress)
        if fetched is None:
            assert meta is not None  # a 304 answers only a conditional request
            write_user_meta(replace(meta, checked=_now()))
            return UpdateResult(changed=False, db=None, url=url)
        size, digest, etag, last_modified = fetched
        try:
            installed = install(
                staged,
                name="OSV PyPI (all.zip)",
                origin=url,
                etag=etag,
                last_modified=last_modified,
                move=True,
                sha256=digest,
            )
        except DatabaseError as exc:
            raise DatabaseError(
                f"the downloaded archive was refused: {exc.message}",
                where=url,
                hint=exc.hint,
            ) from None
        return UpdateResult(
            changed=True, db=installed.db, url=url, downloaded=size, skipped=installed.skipped
        )
    finally:
        staged.unlink(missing_ok=True)


def _download(
    url: str,
    target: Path,
    *,
    headers: dict[str, str],
    limits: Limits,
    progress: Progress | None,
) -> tuple[int, str, str | None, str | None] | None:
    """Stream `url` into `target`: (bytes, SHA-256, ETag, Last-Modified), or None on 304."""
    # Imported here: urllib.request brings ssl and email, which a scan that does not
    # refresh never needs.
    import http.client
    import urllib.error
    import urllib.request

    if not url.startswith(("https://", "http://", "file://")):
        raise UsageError(f"unsupported database URL {url!r}", hint="use an https:// URL")
    started = time.monotonic()
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=limits.timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return None
        raise _failed(url, f"the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _failed(url, f"cannot connect: {reason}") from None
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > limits.max_bytes:
            raise _failed(url, f"the archive is {total} bytes (at most {limits.max_bytes})")
        done = 0
        digest = hashlib.sha256()
        try:
            with target.open("wb") as out:
                while True:
                    if time.monotonic() - started > limits.max_seconds:
                        raise _failed(url, f"the download took over {limits.max_seconds:.0f} s")
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    done += len(chunk)
                    if done > limits.max_bytes:
                        raise _failed(url, f"the archive exceeds {limits.max_bytes} bytes")
                    out.write(chunk)
                    digest.update(chunk)
                    if progress is not None:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        except TimeoutError:
            raise _failed(url, f"no data for {limits.timeout:g} s (after {done} bytes)") from None
        except http.client.IncompleteRead as exc:
            cut = len(exc.partial) + done
            raise _failed(url, f"the download was cut off after {cut} bytes") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _failed(url, f"the download failed after {done} bytes: {exc}") from None
        if total is not None and done != total:
            raise _failed(url, f"the download was cut off: {done} of {total} bytes")
        etag, last_modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        return done, digest.hexdigest(), etag, last_modified


def _failed(url: str, why: str) -> DatabaseError:
    return DatabaseError(
        f"cannot download the database from {url}: {why}",
        hint=f"check the network and run `{DEFAULT.qeguard('db', 'update')}` again; offline, "
        f"fetch all.zip elsewhere and run `{_IMPORT}` "
        "(scans keep the current database)",
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True, slots=True)
class Refresh:
    """What the scan's automatic refresh did, for the report."""

    attempted: bool
    changed: bool = False
    error: str | None = None  # why the refresh failed (the scan used what it had)
    skipped: tuple[str, ...] = ()


def needs_refresh(
    meta: DatabaseMeta | None, max_age_days: float, *, url: str, now: datetime | None = None
) -> bool:
    """True when the stored database was last confirmed current longer than
    `max_age_days` ago, or is missing (the bundled snapshot is always old). A database
    imported from a file (`qeguard db import`) is the user's choice: never replaced
    behind their back (the 30-day staleness finding still applies)."""
    if meta is None:
        return True
    if not _replaced_by_scans(meta):
        return False
    if meta.source != url:
        return True
    checked = meta.checked_at()
    if checked is None:
        return True
    return (now or datetime.now(UTC)) - checked > timedelta(days=max_age_days)


def _replaced_by_scans(meta: DatabaseMeta | None) -> bool:
    """The bundled snapshot (no stored database) or one downloaded from a URL; never one
    `qeguard db import` stored from a file."""
    return meta is None or (meta.source or "").startswith(("https://", "http://"))


def why_scans_keep_it_old(
    meta: DatabaseMeta | None, *, max_age_days: float, stale_days: float
) -> str | None:
    """Why dependency scans will not refresh the database before it is `stale_days` old,
    or None when they will (so its age alone needs no action): `needs_refresh` and
    `refresh` below decide what a scan does, and this reads the same conditions."""
    if offline_from_env():
        return f"scans do not use the network (${OFFLINE_ENV} is set)"
    if not _replaced_by_scans(meta):
        return "scans never replace a database `qeguard db import` stored"
    if max_age_days > stale_days:
        return f"the policy's deps.db_max_age_days ({max_age_days:g}) lets it age past that"
    return None


def refresh(
    *,
    max_age_days: float,
    offline: bool,
    url: str | None = None,
    limits: Limits = Limits(timeout=10.0, max_seconds=300.0),
    progress: Progress | None = None,
) -> Refresh:
    """Update the stored database before a scan when it is stale and the network answers;
    never raises for a network or data problem (the scan goes on with what it has)."""
    if offline or offline_from_env():
        return Refresh(attempted=False)
    url = database_url(url)
    if not needs_refresh(read_user_meta(), max_age_days, url=url):
        return Refresh(attempted=False)
    try:
        result = update_database(url=url, limits=limits, progress=progress)
    except DatabaseError as exc:
        return Refresh(attempted=True, error=exc.message)
    except OSError as exc:  # e.g. a full disk or a read-only cache folder
        return Refresh(attempted=True, error=f"cannot store the database: {exc}")
    return Refresh(attempted=True, changed=result.changed, skipped=result.skipped)
