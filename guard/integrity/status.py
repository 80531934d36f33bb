"""Health at a glance: each tier's signed state, the vulnerability data, the hooks.

`assess` is pure (a verify report, the database info and the hooks state in; a `Health`
out); `collect` gathers those inputs from the repository, the cache and git.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qeguard.errors import ExitCode
from qeguard.hints import DEFAULT, Hints
from qeguard.integrity.manifest import parse_time
from qeguard.render.text import signer_state
from qeguard.report import DatabaseInfo, Report, counted
from qeguard.rules import Family, RuleId, family

EXPIRY_WARN_DAYS = 14


@dataclass(frozen=True, kw_only=True, slots=True)
class TierHealth:
    name: str
    threshold: int
    on_change: str
    sequence: int | None
    created: str | None
    age_days: int | None
    expires: str | None
    expires_in_days: int | None
    signers: tuple[str, ...]
    files: int
    drift: int
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "threshold": self.threshold,
            "on_change": self.on_change,
            "sequence": self.sequence,
            "created": self.created,
            "age_days": self.age_days,
            "expires": self.expires,
            "expires_in_days": self.expires_in_days,
            "signers": list(self.signers),
            "signers_present": len(self.signers),
            "files": self.files,
            "drift": self.drift,
            "problems": list(self.problems),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class HooksHealth:
    installed: bool
    where: str | None = None  # the hook file or config that mentions qeguard

    def to_dict(self) -> dict[str, Any]:
        return {"installed": self.installed, "where": self.where}


@dataclass(frozen=True, kw_only=True, slots=True)
class Health:
    root: str
    commit: str | None
    trust_source: str | None
    tiers: tuple[TierHealth, ...]
    database: DatabaseInfo | None
    database_problem: str | None
    hooks: HooksHealth
    notes: tuple[str, ...] = ()
    exposed_keys: tuple[str, ...] = ()  # messages about private keys git would commit

    @property
    def problems(self) -> list[str]:
        out = [f"tier {t.name}: {p}" for t in self.tiers for p in t.problems]
        if self.database_problem:
            out.append(f"vulnerability database: {self.database_problem}")
        out.extend(self.exposed_keys)
        return out

    @property
    def needs_action(self) -> bool:
        return bool(self.problems)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.FINDINGS if self.needs_action else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "qeguard.status/v1",
            "root": self.root,
            "commit": self.commit,
            "trust_source": self.trust_source,
            "tiers": [t.to_dict() for t in self.tiers],
            "database": self.database.to_dict() if self.database else None,
            "database_problem": self.database_problem,
            "hooks": self.hooks.to_dict(),
            "notes": list(self.notes),
            "exposed_keys": list(self.exposed_keys),
            "problems": self.problems,
            "needs_action": self.needs_action,
        }


def _days(a: datetime, b: datetime) -> int:
    return int((b - a).total_seconds() // 86400)


def assess(
    report: Report,
    *,
    now: datetime,
    database: DatabaseInfo | None,
    database_error: str | None,
    hooks: HooksHealth,
    stale_days: int = 30,
    refreshed_by_scans: bool = True,
    exposed_keys: Sequence[str] = (),
    hints: Hints = DEFAULT,
) -> Health:
    """The health view of one verify run plus the database and hooks state.

    `refreshed_by_scans`: a dependency scan refreshes an old database by itself, so its
    age alone is a note, not a problem (`database_refreshed_by_scans`)."""
    tiers: list[TierHealth] = []
    for t in report.tiers:
        mine = [f for f in report.active_findings if f.tier == t.name]
        drift = len(
            {
                f.location.path
                for f in mine
                if family(f.rule) is Family.INTEGRITY and f.location is not None
            }
        )
        # Signature and trust problems; each one needs someone to act.
        problems = [
            f.message
            for f in mine
            if family(f.rule) is Family.SIGNATURE or f.rule == RuleId.TRUST_CHANGE
        ]
        age = expires_in = None
        if t.created:
            age = _days(parse_time(t.created), now)
        if t.expires:
            expires_in = _days(now, parse_time(t.expires))
            if 0 <= expires_in < EXPIRY_WARN_DAYS:
                problems.append(
                    f"the manifest expires {_in_days(expires_in)} ({t.expires}); "
                    f"re-sign: {hints.sign(t.name)}"
                )
        if drift:
            problems.append(
                f"{counted(drift, 'file differs', 'files differ')} from the signed manifest; "
                f"see `{hints.qeguard('verify')}`, then `{hints.qeguard('restore', '--all')}` "
                "or re-sign"
            )
        tiers.append(
            TierHealth(
                name=t.name,
                threshold=t.threshold,
                on_change=t.on_change,
                sequence=t.sequence,
                created=t.created,
                age_days=age,
                expires=t.expires,
                expires_in_days=expires_in,
                signers=t.signers,
                files=t.files,
                drift=drift,
                problems=tuple(problems),
            )
        )
    db_problem = database_error
    notes = [f.message for f in report.active_findings if f.rule == RuleId.TRUST_SOURCE]
    if database is not None and database.age_days is not None and database.age_days > stale_days:
        old = f"the vulnerability database is {counted(database.age_days, 'day', 'days')} old"
        if refreshed_by_scans:
            notes.append(f"{old}; dependency scans refresh it when online")
        else:
            db_problem = (
                f"{counted(database.age_days, 'day', 'days')} old (older than {stale_days}); "
                f"run `{hints.qeguard('db', 'update')}` when online"
            )
    if not hooks.installed:
        notes.append(
            f"no qeguard git hook: run `{hints.qeguard('install-hooks')}`, or add qeguard to "
            ".pre-commit-config.yaml"
        )
    return Health(
        root=report.target,
        commit=report.commit,
        trust_source=report.trust_source,
        tiers=tuple(tiers),
        database=database,
        database_problem=db_problem,
        hooks=hooks,
        notes=tuple(notes),
        exposed_keys=tuple(exposed_keys),
    )


def _in_days(n: int) -> str:
    return "today" if n == 0 else f"in {counted(n, 'day', 'days')}"


def _ago(n: int) -> str:
    return "today" if n <= 0 else "yesterday" if n == 1 else f"{n} days ago"


def exposed_key_message(rel: str, *, tracked: bool, hints: Hints = DEFAULT) -> str:
    """What to do about a private key file in the work tree."""
    shown = hints.path(rel)
    if tracked:
        return (
            f"private key {shown} is tracked by git: whoever has the repository has the key. "
            f"Untrack it (`{hints.untrack(rel)}`), move it "
            "out of the work tree, and replace the key (`qeguard keygen`, then "
            "`qeguard trust remove`/`trust add`)"
        )
    return (
        f"private key {shown} is in the work tree and not ignored: one `git add -A` "
        "commits it. Move it out of the repository (`qeguard keygen` without --out keeps "
        "keys in your user config folder) or add it to .gitignore"
    )


def database_refreshed_by_scans(root: Path | None = None) -> bool:
    """Whether dependency scans refresh an old vulnerability database by themselves.

    The one place `status` decides whether the database's age alone needs action. A scan
    refreshes the bundled snapshot, or a database `db update` downloaded, once it is older
    than the policy's `deps.db_max_age_days` (default 1) and the network answers; it never
    does with `$QEGUARD_OFFLINE` set, never replaces a database `db import` stored, and a
    policy limit above the staleness limit lets the database age past it
    (`qeguard.deps.update.why_scans_keep_it_old` reads the scanner's conditions). The
    policy is the work tree's `[deps]` table, as `qeguard deps` reads it.
    """
    from qeguard.deps.config import DepsPolicy
    from qeguard.deps.database import STALE_DAYS, read_user_meta
    from qeguard.deps.update import why_scans_keep_it_old
    from qeguard.errors import GuardError
    from qeguard.integrity.policy import load_policy

    try:
        policy = load_policy(root, required=False) if root is not None else None
        deps = DepsPolicy.from_table(policy.deps if policy else None)
    except GuardError:  # a broken policy is verify's finding; judge by the defaults
        deps = DepsPolicy()
    meta = read_user_meta()
    why = why_scans_keep_it_old(meta, max_age_days=deps.db_max_age_days, stale_days=STALE_DAYS)
    return why is None


def hooks_state(root: Path) -> HooksHealth:
    """Whether a git pre-commit hook or the pre-commit framework config runs qeguard."""
    from qeguard.git import open_repo

    candidates: list[Path] = []
    repo = open_repo(root)
    if repo is not None:
        custom = repo.config("core", "hooksPath")
        if custom:
            hooks = Path(custom).expanduser()
            candidates.append(hooks if hooks.is_absolute() else root / hooks)
        candidates.append(Path(repo.repo.common_dir) / "hooks")
    for folder in candidates:
        hook = folder / "pre-commit"
        if _mentions_qeguard(hook):
            return HooksHealth(installed=True, where=_show(root, hook))
    config = root / ".pre-commit-config.yaml"
    if _mentions_qeguard(config):
        return HooksHealth(installed=True, where=_show(root, config))
    return HooksHealth(installed=False)


def _mentions_qeguard(path: Path) -> bool:
    try:
        return path.is_file() and "qeguard" in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _show(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def database_state() -> tuple[DatabaseInfo | None, str | None]:
    """The database a dependency scan would use now, or why there is none."""
    from qeguard.errors import GuardError

    try:
        from qeguard.deps.database import open_database
    except ImportError:
        return None, "unknown (the dependency scanner is not available)"
    try:
        return open_database().info(), None
    except GuardError as exc:
        return None, exc.diagnostics()


def collect(
    root: Path,
    *,
    trust_ref: str | None = None,
    now: datetime | None = None,
    hints: Hints = DEFAULT,
) -> Health:
    from qeguard.deps.database import STALE_DAYS
    from qeguard.git import open_repo
    from qeguard.integrity.gate import run_verify
    from qeguard.integrity.keys import exposed_private_keys

    now = now or datetime.now(UTC)
    report = run_verify(root, trust_ref=trust_ref, now=now, cwd=hints.cwd)
    database, error = database_state()
    repo = open_repo(root)
    exposed = exposed_private_keys(repo) if repo is not None else []
    return assess(
        report,
        now=now,
        database=database,
        database_error=error,
        hooks=hooks_state(root),
        stale_days=STALE_DAYS,
        refreshed_by_scans=database_refreshed_by_scans(root),
        exposed_keys=[exposed_key_message(p, tracked=t, hints=hints) for p, t in exposed],
        hints=hints,
    )


def render_text(health: Health) -> str:
    lines = [
        f"qeguard status  {health.root}"
        + (f"  commit {health.commit[:12]}" if health.commit else "")
        + (f"  (trust from {health.trust_source})" if health.trust_source else "")
    ]
    for t in health.tiers:
        if t.sequence is None:
            lines.append(f"  tier {t.name}: no valid signed manifest")
        else:
            age = f", signed {_ago(t.age_days)}" if t.age_days is not None else ""
            expiry = (
                f", expires {t.expires[:10]} ({_in_days(t.expires_in_days)})"
                if t.expires and t.expires_in_days is not None and t.expires_in_days >= 0
                else f", EXPIRED {t.expires}"
                if t.expires
                else ""
            )
            lines.append(
                f"  tier {t.name}: sequence {t.sequence}{age}{expiry}, "
                f"{signer_state(t.threshold, t.signers)}, {counted(t.files, 'file', 'files')}, "
                f"drift {t.drift}"
            )
        lines.extend(f"    ! {p}" for p in t.problems)
    db = health.database
    if db is not None:
        age = f", {counted(db.age_days, 'day', 'days')} old" if db.age_days is not None else ""
        lines.append(
            f"  vulnerability database: {db.name} ({db.source}, "
            f"{db.date or 'date unknown'}{age}, {db.records or 0} records)"
        )
    else:
        lines.append("  vulnerability database: unknown")
    if health.database_problem:
        lines.append(f"    ! {health.database_problem}")
    lines.append(
        "  hooks: "
        + (f"installed ({health.hooks.where})" if health.hooks.installed else "not installed")
    )
    lines.extend(f"  ! {k}" for k in health.exposed_keys)
    lines.extend(f"  note: {n}" for n in health.notes)
    problems = health.problems
    lines.append(
        f"needs action: {counted(len(problems), 'problem', 'problems')}" if problems else "healthy"
    )
    return "\n".join(lines)


def render_problems(health: Health) -> str:
    """Only what needs action (`status -q`): nothing at all when healthy."""
    return "\n".join(f"! {p}" for p in health.problems)


__all__ = [
    "EXPIRY_WARN_DAYS",
    "Health",
    "HooksHealth",
    "TierHealth",
    "assess",
    "collect",
    "database_refreshed_by_scans",
    "database_state",
    "exposed_key_message",
    "hooks_state",
    "render_problems",
    "render_text",
]
