"""Health at a glance: each tier's signed state, the vulnerability data, the hooks.

`assess` is pure (a verify report, the database info and the hooks state in; a `Health`
out); `collect` gathers those inputs from the repository, the cache and git.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qeguard.errors import ExitCode
from qeguard.integrity.manifest import parse_time
from qeguard.report import DatabaseInfo, Report
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

    @property
    def problems(self) -> list[str]:
        out = [f"tier {t.name}: {p}" for t in self.tiers for p in t.problems]
        if self.database_problem:
            out.append(f"vulnerability database: {self.database_problem}")
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
) -> Health:
    """The health view of one verify run plus the database and hooks state."""
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
                    f"the manifest expires in {expires_in} day(s) ({t.expires}); "
                    f"re-sign: qeguard sign --tier {t.name} --key KEY"
                )
        if drift:
            problems.append(
                f"{drift} file(s) differ from the signed manifest; see "
                "`qeguard verify`, then `qeguard restore` or re-sign"
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
    if database is not None and database.age_days is not None and database.age_days > stale_days:
        db_problem = (
            f"{database.age_days} days old (older than {stale_days}); run "
            "`qeguard db update` when online"
        )
    notes = [f.message for f in report.active_findings if f.rule == RuleId.TRUST_SOURCE]
    if not hooks.installed:
        notes.append(
            "no qeguard git hook: run `qeguard install-hooks`, or add qeguard to "
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
    )


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


def collect(root: Path, *, trust_ref: str | None = None, now: datetime | None = None) -> Health:
    from qeguard.deps.database import STALE_DAYS
    from qeguard.integrity.gate import run_verify

    now = now or datetime.now(UTC)
    report = run_verify(root, trust_ref=trust_ref, now=now)
    database, error = database_state()
    return assess(
        report,
        now=now,
        database=database,
        database_error=error,
        hooks=hooks_state(root),
        stale_days=STALE_DAYS,
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
            signed = (
                "unsigned tier (threshold 0)"
                if t.threshold == 0
                else f"signers {len(t.signers)}/{t.threshold}"
                + (f" ({', '.join(t.signers)})" if t.signers else "")
            )
            age = f", signed {t.age_days} day(s) ago" if t.age_days is not None else ""
            expiry = (
                f", expires {t.expires[:10]} (in {t.expires_in_days} days)"
                if t.expires and t.expires_in_days is not None and t.expires_in_days >= 0
                else f", EXPIRED {t.expires}"
                if t.expires
                else ""
            )
            lines.append(
                f"  tier {t.name}: sequence {t.sequence}{age}{expiry}, {signed}, "
                f"{t.files} files, drift {t.drift}"
            )
        lines.extend(f"    ! {p}" for p in t.problems)
    db = health.database
    if db is not None:
        age = f", {db.age_days} days old" if db.age_days is not None else ""
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
    lines.extend(f"  note: {n}" for n in health.notes)
    problems = health.problems
    lines.append(f"needs action: {len(problems)} problem(s)" if problems else "healthy")
    return "\n".join(lines)


__all__ = [
    "EXPIRY_WARN_DAYS",
    "Health",
    "HooksHealth",
    "TierHealth",
    "assess",
    "collect",
    "database_state",
    "hooks_state",
    "render_text",
]
