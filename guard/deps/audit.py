"""The scan: dependencies + advisories + policy -> findings (pure), and the one entry
point other commands call, `scan_repository`, which does the I/O around it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import qeguard
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from qeguard.deps.config import DepsPolicy
from qeguard.deps.database import STALE_DAYS, OsvDatabase, open_database
from qeguard.deps.model import (
    Advisory,
    Dependency,
    SeveritySource,
    TargetEnvironment,
    parse_version,
)
from qeguard.deps.osv import Match, Record, lowest_clearing
from qeguard.deps.services import lookup
from qeguard.deps.services.interface import Key
from qeguard.hints import DEFAULT, Hints
from qeguard.integrity.policy import Policy
from qeguard.report import (
    OSV_URL,
    DatabaseInfo,
    Finding,
    Fix,
    Inputs,
    Location,
    Report,
    Severity,
    Suppression,
)
from qeguard.rules import RuleId

# Compilers that write a requirements file with hashes (a fix for unhashed pins).
_HASHED_UV = DEFAULT.run_in(None, "uv", "pip", "compile", "--generate-hashes")
_HASHED_PIP = DEFAULT.run_in(None, "pip-compile", "--generate-hashes")

if TYPE_CHECKING:
    from qeguard.deps.services.pypi import LatestReleases  # imports requests: only for --online
    from qeguard.deps.update import Progress, Refresh


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    """How `evaluate` judges what it finds, beyond the [deps] policy."""

    # Advisory ids (any alias) ignored for this run only, from `--ignore-vuln`.
    ignore_vulns: frozenset[str] = frozenset()
    # `--strict`: a dependency that cannot be checked fails the scan.
    strict: bool = False
    fail_on: Severity = Severity.HIGH


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanResult:
    report: Report
    dependencies: tuple[Dependency, ...]
    # (source, canonical name, current version) -> lowest version clearing every advisory
    suggestions: Mapping[tuple[str, str, str], str] = field(default_factory=dict)

    @property
    def fixes(self) -> tuple[Fix, ...]:
        """One suggested fix per vulnerable declaration, in the order they were read."""
        out: list[Fix] = []
        for dep in self.dependencies:
            if dep.version is None:
                continue
            new = self.suggestions.get((dep.source, dep.canonical_name, dep.version))
            if new:
                fix = Fix(
                    package=dep.name,
                    version=dep.version,
                    fixed=new,
                    path=dep.source,
                    applied=False,
                )
                if fix not in out:
                    out.append(fix)
        return tuple(out)


def fix_suggestion(
    dep: Dependency, advisories: Sequence[Advisory], records: Sequence[Record] | None
) -> str | None:
    """The lowest version above the current one that clears every advisory.

    With the offline records the candidate is checked against all of them (a fix for one
    advisory can be inside another's range); without them (online data only) it is the
    highest of each advisory's lowest fix above the current version."""
    if dep.version is None or not advisories:
        return None
    if records:
        return lowest_clearing(dep.version, records, dep.canonical_name)
    current = parse_version(dep.version)
    needed: list[Version] = []
    for adv in advisories:
        fixes = sorted(
            v
            for v in (parse_version(f) for f in adv.fix_versions)
            if v is not None and (current is None or v > current)
        )
        if not fixes:
            return None
        needed.append(fixes[0])
    return str(max(needed))


def evaluate(
    deps: Sequence[Dependency],
    advisories: Mapping[Key, Sequence[Advisory]],
    policy: DepsPolicy,
    *,
    db: OsvDatabase | None = None,
    today: date | None = None,
    licenses: Mapping[str, tuple[str, str | None]] | None = None,
    options: Options | None = None,
) -> tuple[list[Finding], dict[tuple[str, str, str], str]]:
    """Findings for `deps`, and the fix suggestion for each vulnerable pin."""
    today = today or datetime.now(UTC).date()
    options = options or Options(fail_on=policy.fail_on or Severity.HIGH)
    findings: list[Finding] = []
    suggestions: dict[tuple[str, str, str], str] = {}
    expired_seen: set[int] = set()
    for dep in deps:
        loc = Location(path=dep.source, line=dep.line)
        if dep.unscannable:
            findings.append(
                Finding(
                    rule=RuleId.DEP_UNSCANNABLE,
                    # --strict: whatever cannot be checked fails the scan.
                    severity=options.fail_on if options.strict else Severity.LOW,
                    location=loc,
                    title=f"{dep.name} cannot be checked",
                    package=dep.name,
                    message=f"{dep.name}: {dep.unscannable}; no released version to look up",
                    fix="pin a released version, or review the source by hand",
                    details={"reason": dep.unscannable, "strict": options.strict},
                )
            )
            continue
        if dep.version is not None:
            advs = list(advisories.get((dep.canonical_name, dep.version), ()))
            records = db.records_for(dep.canonical_name) if db is not None else None
            suggestion = fix_suggestion(dep, advs, records)
            if suggestion:
                suggestions[(dep.source, dep.canonical_name, dep.version)] = suggestion
            for adv in advs:
                findings.append(
                    _vuln_finding(
                        dep, adv, suggestion, loc, policy, today, findings, expired_seen, options
                    )
                )
            if records:
                findings.extend(_unevaluated(dep, advs, records, loc))
            if (
                policy.require_hashes
                and not dep.hashes
                and dep.kind != "environment"
                and dep.kind != "pyproject"
            ):
                findings.append(
                    Finding(
                        rule=RuleId.DEP_UNHASHED,
                        severity=Severity.MEDIUM,
                        location=loc,
                        package=dep.name,
                        version=dep.version,
                        title=f"{dep.name} has no hash",
                        message=f"{dep.name}=={dep.version} is installed without a hash check",
                        fix=f"regenerate with `{_HASHED_UV}` or `{_HASHED_PIP}`",
                    )
                )
        else:
            if policy.require_pins and dep.kind == "requirements":
                findings.append(
                    Finding(
                        rule=RuleId.DEP_UNPINNED,
                        severity=Severity.MEDIUM,
                        location=loc,
                        package=dep.name,
                        title=f"{dep.name} is not pinned",
                        message=f"{dep.name}{dep.specifier or ''} allows more than one version",
                        fix=f"pin it: {dep.name}==<version>, or use a lock file",
                    )
                )
            if policy.check_ranges and db is not None:
                f = range_finding(dep, db.records_for(dep.canonical_name), loc)
                if f is not None:
                    findings.append(f)
        findings.extend(_license_findings(dep, policy, loc, licenses))
    return findings, suggestions


def _unevaluated(
    dep: Dependency, advs: Sequence[Advisory], records: Sequence[Record], loc: Location
) -> list[Finding]:
    """One finding per record whose ranges cannot be evaluated for this version (and that
    no other answer already reported)."""
    assert dep.version is not None
    reported = {i for a in advs for i in a.ids}
    out: list[Finding] = []
    for r in records:
        if r.id in reported or r.match(dep.canonical_name, dep.version) is not Match.UNKNOWN:
            continue
        problems = "; ".join(r.problems(dep.canonical_name)) or "its versions cannot be ordered"
        out.append(
            Finding(
                rule=RuleId.DEP_UNEVALUATED,
                severity=Severity.MEDIUM,
                location=loc,
                package=dep.name,
                version=dep.version,
                title=f"{dep.name} {dep.version}: {r.id} cannot be evaluated",
                message=f"{r.id} ({r.summary or 'no summary'}) cannot be evaluated for "
                f"{dep.name} {dep.version}: {problems}, and it lists no affected versions",
                fix=f"read {OSV_URL}{r.id} and judge {dep.version} by "
                "hand; once reviewed, ignore it in [deps] with a reason",
                details={
                    "id": r.id,
                    "aliases": sorted(r.aliases),
                    "problems": list(r.problems(dep.canonical_name)),
                    "url": OSV_URL + r.id,
                },
            )
        )
    return out


def _vuln_finding(
    dep: Dependency,
    adv: Advisory,
    suggestion: str | None,
    loc: Location,
    policy: DepsPolicy,
    today: date,
    findings: list[Finding],
    expired_seen: set[int],
    options: Options,
) -> Finding:
    current = parse_version(dep.version or "")
    later = [
        f
        for f in adv.fix_versions
        if current is None or ((v := parse_version(f)) is not None and v > current)
    ]
    if suggestion:
        fix = f"upgrade {dep.name} to {suggestion} (clears every known advisory)"
    elif later:
        fix = f"upgrade {dep.name} to {later[0]} or later"
    else:
        fix = "no fixed release is known: remove or replace the dependency"
    rating = adv.rating
    details: dict[str, object] = {
        "id": adv.id,
        "aliases": sorted(adv.aliases),
        "fix_versions": list(adv.fix_versions),
        "cvss": rating.vector,
        "score": rating.score,
        "severity_source": rating.source.value,
        "description": adv.description or adv.summary,
        "url": adv.url,
        "published": adv.published,
        "source_kind": dep.kind,
        "group": dep.group,
    }
    # The policy decides where a vulnerability without any rating falls against fail_on.
    severity = policy.unknown_severity if rating.source is SeveritySource.NONE else rating.severity
    suppressed = None
    ignore = policy.ignore_for(adv.ids)
    if ignore is not None:
        if ignore.expired(today):
            details["ignore_expired"] = ignore.expires.isoformat() if ignore.expires else None
            if ignore.index not in expired_seen:
                expired_seen.add(ignore.index)
                findings.append(
                    Finding(
                        rule=RuleId.DEP_IGNORE_EXPIRED,
                        severity=Severity.LOW,
                        location=Location(path=policy.source),
                        title=f"ignore of {ignore.id} expired on {ignore.expires}",
                        message=f"deps.ignore[{ignore.index}] ({ignore.id}: {ignore.reason}) "
                        f"expired on {ignore.expires}, so its findings count again",
                        fix="fix the dependency, or renew the ignore with a new reason and date",
                        details={"id": ignore.id},
                    )
                )
        else:
            suppressed = Suppression(
                reason=ignore.reason,
                kind="ignore",
                expires=ignore.expires.isoformat() if ignore.expires else None,
            )
    if suppressed is None:
        hit = sorted(adv.ids & options.ignore_vulns)
        if hit:
            suppressed = Suppression(
                reason=f"ignored for this run (--ignore-vuln {hit[0]})", kind="ignore"
            )
    return Finding(
        rule=RuleId.DEP_VULN,
        severity=severity,
        location=loc,
        package=dep.name,
        version=dep.version,
        title=f"{dep.name} {dep.version}: {adv.id}",
        message=adv.summary or f"{dep.name} {dep.version} is affected by {adv.id}",
        fix=fix,
        suppressed=suppressed,
        details=details,
    )


def range_finding(dep: Dependency, records: Sequence[Record], loc: Location) -> Finding | None:
    """A declared range that admits known-vulnerable versions, with the lower bound that
    would exclude all of them (when a fixed release exists)."""
    if not records:
        return None
    try:
        spec = SpecifierSet(dep.specifier)
    except InvalidSpecifier:
        return None
    name = dep.canonical_name
    probes: set[Version] = set()
    for r in records:
        for a in r.affected:
            if a.name == name:
                probes.update(a.known_versions())
    probes.update(v for v in (parse_version(s.version) for s in spec) if v is not None)
    admitted = [v for v in probes if spec.contains(v, prereleases=False)]
    bad = sorted(v for v in admitted if any(r.affects(name, str(v)) for r in records))
    if not bad:
        return None
    hit_ids = sorted({r.id for r in records for v in bad if r.affects(name, str(v))})
    worst = bad[-1]
    fixes = sorted({f for r in records for f in r.fixed_for(name) if f > worst})
    bound = next((f for f in fixes if not any(r.affects(name, str(f)) for r in records)), None)
    if bound is not None:
        fix = f"raise the lower bound: {dep.name}>={bound}"
        message = (
            f"{dep.name}{dep.specifier or ' (any version)'} admits versions with known "
            f"vulnerabilities ({', '.join(hit_ids[:5])}"
            f"{', ...' if len(hit_ids) > 5 else ''}); >={bound} excludes them"
        )
    else:
        fix = "no release fixes every advisory yet: pin a reviewed version"
        message = (
            f"{dep.name}{dep.specifier or ' (any version)'} admits known-vulnerable "
            f"versions up to {worst} and no fixed release is known"
        )
    return Finding(
        rule=RuleId.DEP_RANGE,
        severity=Severity.LOW,
        location=loc,
        package=dep.name,
        title=f"{dep.name}{dep.specifier} admits vulnerable versions",
        message=message,
        fix=fix,
        details={
            "ids": hit_ids,
            "lower_bound": str(bound) if bound else None,
            "specifier": dep.specifier,
        },
    )


def _license_findings(
    dep: Dependency,
    policy: DepsPolicy,
    loc: Location,
    licenses: Mapping[str, tuple[str, str | None]] | None,
) -> list[Finding]:
    if not (policy.licenses_allow or policy.licenses_deny):
        return []
    lic = dep.license
    if lic is None and licenses is not None:
        installed = licenses.get(dep.canonical_name)
        if installed is not None and (dep.version is None or installed[0] == dep.version):
            lic = installed[1]
    if not lic:
        return []
    from qeguard.deps.licenses import decide

    why = decide(lic, policy.licenses_allow, policy.licenses_deny)
    if why is None:
        return []
    return [
        Finding(
            rule=RuleId.DEP_LICENSE,
            severity=Severity.MEDIUM,
            location=loc,
            package=dep.name,
            version=dep.version,
            title=f"{dep.name}: license {lic} not allowed",
            message=f"{dep.name}: {why}",
            fix="replace the dependency or update [deps.licenses] in the policy",
            details={"license": lic},
        )
    ]


def outdated_findings(deps: Sequence[Dependency], releases: LatestReleases) -> list[Finding]:
    """`info` findings for exact pins behind the index's latest release, and one `low`
    finding naming the packages whose latest release could not be looked up."""
    out: list[Finding] = []
    for dep in deps:
        latest = releases.latest.get(dep.canonical_name)
        if dep.version is None or latest is None:
            continue
        current, newest = parse_version(dep.version), parse_version(latest)
        if current is None or newest is None or newest <= current:
            continue
        out.append(
            Finding(
                rule=RuleId.DEP_OUTDATED,
                severity=Severity.INFO,
                location=Location(path=dep.source, line=dep.line),
                package=dep.name,
                version=dep.version,
                title=f"{dep.name} {dep.version} is behind {latest}",
                message=f"{dep.name}=={dep.version}: the latest release is {latest}",
                fix=f"update the pin to {dep.name}=={latest} after reading its release notes",
                details={"latest": latest},
            )
        )
    if releases.failed:
        names = sorted(releases.failed)
        first = releases.failed[names[0]]
        out.append(
            Finding(
                rule=RuleId.DEP_OUTDATED,
                severity=Severity.LOW,
                title=f"latest releases of {len(names)} package(s) could not be checked",
                message=f"the package index did not answer for {', '.join(names[:10])}"
                f"{', ...' if len(names) > 10 else ''} ({first}); their pins were not "
                "checked for newer releases",
                fix="check the network (or $QEGUARD_PYPI_URL) and run again with --online",
                details={"id": "lookup-failed", "packages": names},
            )
        )
    return out


def database_findings(
    info: DatabaseInfo,
    fallback: str | None,
    *,
    refreshed: Refresh | None = None,
    skipped: Sequence[str] = (),
    hints: Hints = DEFAULT,
) -> list[Finding]:
    out: list[Finding] = []
    if fallback:
        out.append(
            Finding(
                rule=RuleId.DEP_DB,
                severity=Severity.LOW,
                title="online service failed",
                message=f"{fallback}; the scan used the offline database instead",
                fix="check the network and run again with --online",
                details={"id": "fallback"},
            )
        )
    if refreshed is not None and refreshed.error:
        out.append(
            Finding(
                rule=RuleId.DEP_DB,
                severity=Severity.LOW,
                title="vulnerability database could not be refreshed",
                message=f"{refreshed.error}; the scan used {info.name} dated "
                f"{info.date or 'unknown'} instead",
                fix="check the network (or $QEGUARD_DB_URL) and run "
                f"`{hints.qeguard('db', 'update')}`; use --offline to scan without trying",
                details={"id": "refresh-failed"},
            )
        )
    if skipped:
        out.append(
            Finding(
                rule=RuleId.DEP_DB,
                severity=Severity.LOW,
                title=f"{len(skipped)} malformed advisory record(s) skipped",
                message=f"the database holds records that are not valid OSV, so they were "
                f"not checked: {'; '.join(skipped[:3])}{'; ...' if len(skipped) > 3 else ''}",
                fix=f"download the database again with `{hints.qeguard('db', 'update')}`",
                details={"id": "skipped-records", "records": list(skipped[:100])},
            )
        )
    if info.source == "offline" and info.age_days is not None and info.age_days > STALE_DAYS:
        out.append(
            Finding(
                rule=RuleId.DEP_DB,
                severity=Severity.LOW,
                title=f"vulnerability database is {info.age_days} days old",
                message=f"{info.name} dates from {info.date} ({info.age_days} days ago); "
                f"advisories published since then are not checked",
                fix=f"run `{hints.qeguard('db', 'update')}` when online, or scan with --online",
                details={"id": "stale"},
            )
        )
    return out


def scan_repository(root: Path, policy: Policy | None, **options: Any) -> Report:
    """`run_scan(...).report`: for commands that only need the report (e.g. `qeguard ci`)."""
    return run_scan(root, policy, **options).report


def run_scan(
    root: Path,
    policy: Policy | None,
    *,
    paths: Sequence[Path] = (),
    env: bool = False,
    online: bool = False,
    offline: bool | None = None,
    service: str = "osv",
    db_path: Path | None = None,
    target: TargetEnvironment | None = None,
    today: date | None = None,
    online_service_obj: object | None = None,
    sleep: Callable[[float], None] = time.sleep,
    pypi_url: str | None = None,
    ignore_vulns: Sequence[str] = (),
    strict: bool = False,
    progress: Progress | None = None,
    hints: Hints = DEFAULT,
) -> ScanResult:
    """Read the inputs, refresh a stale database (unless offline), look every pin up and
    judge it. `offline` None means `$QEGUARD_OFFLINE`; `hints` make the commands in fixes
    pasteable where the user is."""
    from qeguard.deps import sources
    from qeguard.deps.sources.environment import installed, load_environment
    from qeguard.deps.update import offline_from_env, refresh
    from qeguard.errors import UsageError

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    offline = offline_from_env() if offline is None else offline
    if offline and online:
        raise UsageError(
            "--online and --offline (or $QEGUARD_OFFLINE) exclude each other",
            hint="drop one of them",
        )
    where = policy.source if policy is not None else "policy"
    deps_policy = DepsPolicy.from_table(policy.deps if policy else None, where=where)
    fail_on = deps_policy.fail_on or (policy.fail_on if policy else Severity.HIGH)
    target = target or TargetEnvironment.current()
    deps: list[Dependency] = []
    files: list[str] = []
    if env:
        deps.extend(load_environment())
    if paths or not env:
        inputs = list(paths) or sources.detect(root)
        files.extend(sources.relpath(p, root) for p in inputs)
        deps.extend(sources.load_all(inputs, root=root, env=target))
    files.extend(d.source for d in deps if not d.source.startswith("("))
    refreshed = None
    if db_path is None:
        refreshed = refresh(
            max_age_days=deps_policy.db_max_age_days, offline=offline, progress=progress
        )
    db = open_database(db_path)
    online_obj = None
    if online:
        from qeguard.deps.services.pip_audit import online_service

        online_obj = online_service_obj or online_service(service)
    result = lookup(deps, db=db, online=online_obj, online_name=service, sleep=sleep)
    findings, suggestions = evaluate(
        deps,
        result.advisories,
        deps_policy,
        db=db,
        today=today,
        licenses=installed() if (deps_policy.licenses_allow or deps_policy.licenses_deny) else None,
        options=Options(ignore_vulns=frozenset(ignore_vulns), strict=strict, fail_on=fail_on),
    )
    note = result.fallback_reason
    if refreshed is not None and refreshed.error:
        note = f"database refresh failed: {refreshed.error}"
    if result.source == "offline":
        info = db.info(note=note, today=today)
    else:
        info = DatabaseInfo(
            source=result.source,
            name=f"pip-audit {result.source} service",
            note=f"severities rated from {db.meta.name} ({db.date})",
        )
    findings.extend(
        database_findings(
            info, result.fallback_reason, refreshed=refreshed, skipped=db.skipped, hints=hints
        )
    )
    services = [result.source]
    if online and deps_policy.outdated:
        from qeguard.deps.services.pypi import latest_releases

        pinned = [d.canonical_name for d in deps if d.version is not None]
        findings.extend(outdated_findings(deps, latest_releases(pinned, url=pypi_url, sleep=sleep)))
        services.append("pypi-json")
    report = Report(
        tool_version=qeguard.__version__,
        target=str(root),
        started=started,
        duration_s=time.perf_counter() - t0,
        fail_on=fail_on,
        command="deps",
        database=info,
        inputs=Inputs(
            files=tuple(dict.fromkeys(files)),
            packages=len({(d.canonical_name, d.version) for d in deps if d.version}),
            dependencies=len(deps),
            services=tuple(services),
        ),
        findings=tuple(findings),
    )
    result_ = ScanResult(report=report, dependencies=tuple(deps), suggestions=suggestions)
    return replace_report(result_, fixes=result_.fixes)


def replace_report(result: ScanResult, **changes: Any) -> ScanResult:
    """`result` with its report's fields replaced (e.g. the fixes `--fix` applied)."""
    return dataclasses.replace(result, report=dataclasses.replace(result.report, **changes))
