"""The integrity check end to end: where trust comes from, which tree, and the report.

Trust sources, in order: `--trust-ref REF` (CI: the base branch), else `HEAD`, else the
working tree with a QG-TRUST-SOURCE finding (a first commit has nothing older to trust).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import qeguard
from qeguard.errors import ConfigError, EnvelopeError, UsageError
from qeguard.git import GitRepo, open_repo
from qeguard.hints import DEFAULT, Hints
from qeguard.integrity import override
from qeguard.integrity.checks.envelope import Options
from qeguard.integrity.config import Config, parse_config
from qeguard.integrity.dsse import Envelope
from qeguard.integrity.layout import (
    POLICY_PATH,
    TRUST_PATH,
    envelope_path,
    list_path,
    reject_custom_location,
)
from qeguard.integrity.manifest import parse_list
from qeguard.integrity.trees.base import Tree
from qeguard.integrity.trees.commit import CommitTree
from qeguard.integrity.trees.index import IndexTree
from qeguard.integrity.trees.work import WorkTree
from qeguard.integrity.verifier import verify
from qeguard.report import Finding, Location, Override, Report, Severity
from qeguard.rules import RuleId


@dataclass(frozen=True, kw_only=True, slots=True)
class Context:
    root: Path
    repo: GitRepo | None


def open_context(root: Path) -> Context:
    repo = open_repo(root)
    reject_custom_location(root)
    return Context(root=root, repo=repo)


def work_tree(ctx: Context) -> WorkTree:
    if ctx.repo is None:
        return WorkTree(ctx.root)
    return WorkTree(
        ctx.root,
        list_paths=ctx.repo.list_paths,
        start_listing=ctx.repo.start_list_paths,
        eol=ctx.repo.eol_converted,
        gitlinks=ctx.repo.worktree_gitlinks,
        exec_bit_meaningful=ctx.repo.filemode,
    )


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def trusted_config(
    ctx: Context, tree: Tree, trust_ref: str | None, *, hints: Hints = DEFAULT
) -> tuple[Config, Callable[[str], bytes | None] | None, list[Finding]]:
    """The config that decides trust, a reader for the base manifests, and any warning."""
    if trust_ref is not None:
        if ctx.repo is None:
            raise ConfigError("--trust-ref needs a git repository", where=str(ctx.root))
        rev = ctx.repo.resolve(trust_ref)
        read = _reader(ctx.repo, rev)
        config = parse_config(read, label=f"{trust_ref} {rev[:12]}")
        if config is None:
            raise ConfigError(
                f"no policy at {trust_ref}",
                where=f"{trust_ref}:{POLICY_PATH}",
                hint="protect the base branch first: commit .qeguard/ there",
            )
        return config, read, []
    if ctx.repo is not None and (head := ctx.repo.head()) is not None:
        read = _reader(ctx.repo, head)
        config = parse_config(read, label=f"HEAD {head[:12]}")
        if config is not None:
            return config, read, []
    config = parse_config(tree.read, label=tree.label)
    if config is None:
        if isinstance(tree, IndexTree) and (ctx.root / POLICY_PATH).is_file():
            raise ConfigError(
                "the policy is not staged (nor in any commit)",
                where=POLICY_PATH,
                hint=f"stage it: {hints.commit_config()}",
            )
        raise ConfigError(
            "no policy found",
            where=POLICY_PATH,
            hint="run `qeguard init --preset default` (or qemlflow, strict)",
        )
    warning = Finding(
        rule=RuleId.TRUST_SOURCE,
        severity=Severity.INFO,
        title=f"Trust read from the {tree.label}",
        message=f"no commit holds .qeguard/ yet, so policy and trust come from the "
        f"{tree.label} and could vouch for themselves",
        location=Location(path=POLICY_PATH),
        fix=f"{hints.commit_config()} && git commit",
    )
    return config, None, [warning]


def tree_config(tree: Tree, trusted: Config) -> Config | None:
    """The policy and trust in the tree being verified. Usually they are the trusted bytes
    themselves: then the trusted config is returned instead of parsing them a second time."""
    if (
        tree.read(POLICY_PATH) == trusted.policy_bytes
        and (tree.read(TRUST_PATH) or b"") == trusted.trust_bytes
    ):
        return trusted
    return parse_config(tree.read, label=tree.label)


def _reader(repo: GitRepo, rev: str) -> Callable[[str], bytes | None]:
    return lambda path: repo.read_at(rev, path)


def base_payloads(read: Callable[[str], bytes | None] | None, config: Config) -> dict[str, bytes]:
    if read is None:
        return {}
    out: dict[str, bytes] = {}
    for tier in config.policy.tiers:
        data = read(envelope_path(tier.name))
        if data is None:
            continue
        try:
            out[tier.name] = Envelope.from_bytes(data, source="base").payload
        except EnvelopeError:
            continue
    return out


def staged_scope(
    ctx: Context,
    tree: Tree,
    trusted: Config,
    candidate: Config | None,
    base_read: Callable[[str], bytes | None] | None,
    *,
    base_is_head: bool = False,
) -> frozenset[str] | None:
    """What a staged (hook) check must look at: the staged paths plus every path whose
    manifest line changed. None means "everything": there is no committed policy to
    compare with, or the policy itself is changing, so any file may change tier."""
    if ctx.repo is None or base_read is None or candidate is None:
        return None
    if candidate.policy_bytes != trusted.policy_bytes:
        return None
    paths = set(ctx.repo.staged_paths())
    head = ctx.repo.head() if base_is_head else None
    for tier in trusted.policy.tiers:
        lpath = list_path(tier.name)
        # Same object id, same bytes: a 100,000-line list need not be read to know.
        if (
            head is not None
            and isinstance(tree, IndexTree)
            and tree.blob_id(lpath) == ctx.repo.blob_id_at(head, lpath)
        ):
            continue
        old, new = base_read(lpath), tree.read(lpath)
        if old != new:
            paths |= _changed_entries(old, new)
    return frozenset(paths)


def _changed_entries(old: bytes | None, new: bytes | None) -> set[str]:
    """Paths of the list lines that differ (lines are compared, not whole lists parsed)."""
    before = set((old or b"").splitlines(keepends=True))
    after = set((new or b"").splitlines(keepends=True))
    out: set[str] = set()
    for line in before ^ after:
        try:
            out.update(e.path for e in parse_list(line, source="manifest"))
        except EnvelopeError:
            continue  # the tier check reports the malformed list
    return out


def select_tree(ctx: Context, *, staged: bool, rev: str | None) -> Tree:
    if staged and rev:
        raise UsageError("--staged and --commit exclude each other")
    if (staged or rev) and ctx.repo is None:
        raise UsageError("--staged and --commit need a git repository", where=str(ctx.root))
    if staged and ctx.repo is not None:
        tree = IndexTree(ctx.repo)
        # One index lookup for every small file verification will read.
        tree.prefetch([POLICY_PATH, TRUST_PATH])
        return tree
    if rev and ctx.repo is not None:
        return CommitTree(ctx.repo, rev)
    return work_tree(ctx)


def override_claims(
    ctx: Context,
    *,
    explicit: Sequence[Override],
    message: str | None,
    trust_ref: str | None,
    tip: str | None,
    now: datetime,
) -> list[override.Claim]:
    """Overrides from the command line, the message being committed, and the trailers of
    the commits under test (`trust_ref..tip`)."""
    claims = [override.Claim(override=o) for o in explicit]
    if message is not None:
        who = ctx.repo.user() if ctx.repo else os.environ.get("USER", "unknown")
        claims += [
            override.Claim(override=Override(reason=r, who=who, when=now.isoformat()))
            for r in override.trailers(message)
        ]
    if trust_ref is not None and ctx.repo is not None and tip is not None:
        for c in ctx.repo.commits_between(ctx.repo.resolve(trust_ref), tip):
            for reason in override.trailers(c.message):
                claims.append(
                    override.Claim(
                        override=Override(
                            reason=reason, who=c.author, when=c.when, commit=c.hexsha
                        ),
                        changed=c.changed,
                    )
                )
    return claims


def run_verify(
    root: Path,
    *,
    trust_ref: str | None = None,
    tree: Tree | None = None,
    now: datetime | None = None,
    local: bool | None = None,
    only_paths: frozenset[str] | None = None,
    progress: Callable[[int], None] | None = None,
    staged: bool = False,
    rev: str | None = None,
    overrides: Sequence[Override] = (),
    message: str | None = None,
    cwd: Path | None = None,
) -> Report:
    """Verify the working tree (default), the index (`staged`) or a commit (`rev`).

    `cwd` is the folder the user runs from: fix hints are worded for it."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    ctx = open_context(root)
    tree = tree or select_tree(ctx, staged=staged, rev=rev)
    hints = Hints(root=root, cwd=cwd, staged=staged)
    trusted, base_read, warnings = trusted_config(ctx, tree, trust_ref, hints=hints)
    if isinstance(tree, IndexTree):
        tree.prefetch(
            [p for t in trusted.policy.tiers for p in (list_path(t.name), envelope_path(t.name))]
        )
    candidate = tree_config(tree, trusted)
    if staged and only_paths is None:
        only_paths = staged_scope(
            ctx, tree, trusted, candidate, base_read, base_is_head=trust_ref is None
        )
    is_local = (trust_ref is None and not in_ci()) if local is None else local
    opts = Options(
        now=now or started,
        local=is_local,
        base_payloads=base_payloads(base_read, trusted),
        only_paths=only_paths,
        hints=hints,
    )
    result = verify(tree, trusted, opts, candidate=candidate, progress=progress)
    tip = tree.rev if isinstance(tree, CommitTree) else (ctx.repo.head() if ctx.repo else None)
    report = Report(
        tool_version=qeguard.__version__,
        command="verify",
        target=str(root),
        started=started,
        duration_s=0.0,
        fail_on=result.effective.policy.fail_on,
        commit=tip,
        trust_source=trusted.label,
        tiers=tuple(result.tiers),
        findings=tuple(warnings + result.findings),
    )
    claims = override_claims(
        ctx, explicit=overrides, message=message, trust_ref=trust_ref, tip=tip, now=opts.now
    )
    report = override.apply(
        report, claims, local=is_local, matcher=result.effective.policy.matcher()
    )
    return replace(report, duration_s=time.monotonic() - clock)
