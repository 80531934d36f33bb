"""The integrity check end to end: where trust comes from, which tree, and the report.

Trust comes from the trust root and the first-parent history after it
(`qeguard.integrity.trust_source`), walked to the commit under test (HEAD for the
working tree and the index). `--trust-ref` adds a base: for rollback against the target
branch, for what a change touched, and to check that no trust change of the base was
dropped. Only when no commit holds `.qeguard/` yet does trust come from the tree itself,
with a QG-TRUST-SOURCE finding.

Strict everywhere: only the hooks (`local=True`, set by `verify --hook`) relax a
threshold shortfall that has a valid signature into a warning and let overrides pass.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import qeguard
from qeguard.errors import ConfigError, EnvelopeError, GuardError, UsageError
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
from qeguard.integrity.trust_source import ROOT_ENV, Chain, TrustState, dropped_change, establish
from qeguard.integrity.verifier import Pipeline, Result, verify
from qeguard.report import Finding, Location, Override, Report, Severity
from qeguard.rules import RuleId

if TYPE_CHECKING:
    from qeguard.integrity.trees.work import WorkTree

Reader = Callable[[str], bytes | None]


@dataclass(frozen=True, kw_only=True, slots=True)
class Context:
    root: Path
    repo: GitRepo | None


def open_context(root: Path) -> Context:
    repo = open_repo(root)
    reject_custom_location(root)
    return Context(root=root, repo=repo)


def work_tree(ctx: Context) -> WorkTree:
    # Imported here: the hooks (the staged index) never walk the working tree.
    from qeguard.integrity.trees.work import WorkTree

    if ctx.repo is None:
        return WorkTree(ctx.root)
    return WorkTree(
        ctx.root,
        list_paths=ctx.repo.list_paths,
        start_index=ctx.repo.start_index_listing,
        ignored=ctx.repo.ignored,
        eol=ctx.repo.eol_converted,
        gitlinks=ctx.repo.worktree_gitlinks,
        exec_bit_meaningful=ctx.repo.filemode,
    )


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True, kw_only=True, slots=True)
class Trusted:
    """The trust a verification runs under, and where it came from."""

    config: Config
    source: str  # the report's trust_source: the root in full, and the way from it
    base: str | None = None  # the trust ref's commit
    base_read: Reader | None = None  # the base (trust ref, else HEAD) for rollback and scope
    history: Mapping[str, bytes] = field(default_factory=dict)  # highest payload per tier
    findings: tuple[Finding, ...] = ()
    chain: Chain | None = None


def trusted_config(
    ctx: Context,
    tree: Tree,
    trust_ref: str | None = None,
    *,
    trust_root: str | None = None,
    now: datetime | None = None,
    hints: Hints = DEFAULT,
) -> Trusted:
    """The config that decides trust for `tree`, from the root and the history to it."""
    repo = ctx.repo
    if trust_ref is not None and repo is None:
        raise ConfigError("--trust-ref needs a git repository", where=str(ctx.root))
    base = repo.resolve(trust_ref, where="--trust-ref", branch=True) if repo and trust_ref else None
    target = tree.rev if isinstance(tree, CommitTree) else (repo.head() if repo else None)
    root = resolve_root(repo, trust_root)
    if repo is None or target is None:
        if root is not None:
            raise UsageError("--trust-root needs a commit to verify", where=str(ctx.root))
        return _tree_trust(ctx, tree, hints)
    found = establish(
        repo,
        target,
        root=root[0] if root else None,
        root_reason=root[1] if root else "",
        base=base,
        now=now,
        hints=hints,
    )
    if found.chain is None:
        if base is not None:
            raise ConfigError(
                f"no policy in the history of {trust_ref}",
                where=f"{trust_ref}:{POLICY_PATH}",
                hint="protect the base branch first: commit .qeguard/ there",
            )
        return _tree_trust(ctx, tree, hints)
    findings = list(found.findings)
    if base is not None and trust_ref is not None:
        dropped = dropped_change(repo, base, target, label=trust_ref, hints=hints)
        if dropped is not None:
            findings.append(dropped)
    # The base the tree is compared with: the trust ref, or HEAD for the working tree and
    # the index (what the commit being made changes).
    base_rev = base if base is not None else (None if isinstance(tree, CommitTree) else target)
    return _trusted(
        found.chain,
        found.chain.state,
        base=base,
        base_read=_reader(repo, base_rev) if base_rev else None,
        findings=findings,
    )


def resolve_root(repo: GitRepo | None, trust_root: str | None) -> tuple[str, str] | None:
    """The pinned root (commit id, where it was pinned), from the flag or the environment."""
    name, where = trust_root, "--trust-root"
    if not name:
        name, where = os.environ.get(ROOT_ENV, "").strip() or None, ROOT_ENV
    if not name:
        return None
    if repo is None:
        raise ConfigError(f"{where} needs a git repository")
    return repo.resolve(name, where=where), f"pinned by {where}"


def _trusted(
    chain: Chain,
    state: TrustState,
    *,
    base: str | None,
    base_read: Reader | None,
    findings: Sequence[Finding],
) -> Trusted:
    return Trusted(
        config=state.config,
        source=replace(chain, state=state).describe(),
        base=base,
        base_read=base_read,
        history={tier: s.payload for tier, s in state.highest.items()},
        findings=tuple(findings),
        chain=chain,
    )


def _tree_trust(ctx: Context, tree: Tree, hints: Hints) -> Trusted:
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
    return Trusted(config=config, source=tree.label, findings=(warning,))


def tree_config(tree: Tree, trusted: Config) -> Config | None:
    """The policy and trust in the tree being verified. Usually they are the trusted bytes
    themselves: then the trusted config is returned instead of parsing them a second time."""
    if (
        tree.read(POLICY_PATH) == trusted.policy_bytes
        and (tree.read(TRUST_PATH) or b"") == trusted.trust_bytes
    ):
        return trusted
    return parse_config(tree.read, label=tree.label)


def _reader(repo: GitRepo, rev: str) -> Reader:
    return lambda path: repo.read_at(rev, path)


def base_payloads(read: Reader | None, config: Config) -> dict[str, bytes]:
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


def signed_sequences(ctx: Context, tree: Tree) -> dict[str, int]:
    """The sequence a new payload of each tier must exceed: the highest along the trust
    history and at HEAD, so that re-signing can never look like a rollback."""
    from qeguard.integrity.manifest import Payload

    try:
        trusted = trusted_config(ctx, tree)
        history, base_read = trusted.history, trusted.base_read
    except GuardError:
        # No walkable history (a shallow clone): HEAD alone still orders the sequence;
        # verification will say what is missing.
        head = ctx.repo.head() if ctx.repo else None
        history, base_read = {}, (_reader(ctx.repo, head) if ctx.repo and head else None)
    config = parse_config(tree.read, label=tree.label)
    payloads = [*history.items(), *(base_payloads(base_read, config).items() if config else ())]
    out: dict[str, int] = {}
    for name, payload in payloads:
        try:
            seq = Payload.from_bytes(payload, source="base").sequence
        except EnvelopeError:  # a broken base manifest must not stop a repair
            continue
        out[name] = max(out.get(name, 0), seq)
    return out


def staged_scope(
    ctx: Context,
    tree: Tree,
    trusted: Config,
    candidate: Config | None,
    base_read: Reader | None,
    *,
    base_is_head: bool = False,
) -> frozenset[str] | None:
    """What a staged (hook) check must look at: the staged paths plus every path whose
    manifest line changed. None means "everything": there is no committed policy to
    compare with, the policy itself is changing (any file may change tier), or nothing is
    staged at all (`pre-commit run --all-files`, a manual run: check the whole index)."""
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
            paths |= changed_entries(old, new)
    return frozenset(paths) if paths else None


def changed_entries(old: bytes | None, new: bytes | None) -> set[str]:
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
        return CommitTree(ctx.repo, ctx.repo.resolve(rev, where="--commit"))
    return work_tree(ctx)


def override_claims(
    ctx: Context,
    *,
    explicit: Sequence[Override],
    message: str | None,
    base: str | None,
    tip: str | None,
    now: datetime,
) -> list[override.Claim]:
    """Overrides from the command line, the message being committed, and the trailers of
    the commits under test (`base..tip`)."""
    claims = [override.Claim(override=o) for o in explicit]
    if message is not None:
        who = ctx.repo.user() if ctx.repo else os.environ.get("USER", "unknown")
        claims += [
            override.Claim(override=Override(reason=r, who=who, when=now.isoformat()))
            for r in override.trailers(message)
        ]
    if base is not None and ctx.repo is not None and tip is not None:
        for c in ctx.repo.commits_between(base, tip):
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


class ProgressSink(Protocol):
    """What shows progress (`cli.progress.Progress`): counts, and the total once known."""

    def __call__(self, n: int) -> None: ...

    def expect(self, total: int) -> None: ...


def pipeline_for(tree: Tree, progress: ProgressSink | None) -> Pipeline:
    """Progress of a scan, for a display that shows it (the tree scans ahead itself)."""
    if progress is None:
        return Pipeline()
    return Pipeline(expect=progress.expect, progress=progress)


def _check(
    tree: Tree,
    trusted: Trusted,
    opts: Options,
    candidate: Config | None,
    progress: ProgressSink | None,
) -> Result:
    return verify(
        tree, trusted.config, opts, candidate=candidate, pipeline=pipeline_for(tree, progress)
    )


def run_verify(
    root: Path,
    *,
    trust_ref: str | None = None,
    trust_root: str | None = None,
    tree: Tree | None = None,
    now: datetime | None = None,
    local: bool = False,
    only_paths: frozenset[str] | None = None,
    progress: ProgressSink | None = None,
    staged: bool = False,
    rev: str | None = None,
    overrides: Sequence[Override] = (),
    message: str | None = None,
    cwd: Path | None = None,
) -> Report:
    """Verify the working tree (default), the index (`staged`) or a commit (`rev`).

    Strict unless `local` (the hooks): then a threshold shortfall with a valid signature
    warns and an override lets blocking findings through. `cwd` is the folder the user
    runs from: fix hints are worded for it.
    """
    started = datetime.now(UTC)
    clock = time.monotonic()
    ctx = open_context(root)
    tree = tree or select_tree(ctx, staged=staged, rev=rev)
    hints = Hints(root=root, cwd=cwd, staged=staged)
    trusted = trusted_config(ctx, tree, trust_ref, trust_root=trust_root, now=now, hints=hints)
    config = trusted.config
    if isinstance(tree, IndexTree):
        tree.prefetch(
            [p for t in config.policy.tiers for p in (list_path(t.name), envelope_path(t.name))]
        )
    candidate = tree_config(tree, config)
    if staged and only_paths is None:
        only_paths = staged_scope(
            ctx, tree, config, candidate, trusted.base_read, base_is_head=trust_ref is None
        )
    opts = Options(
        now=now or started,
        local=local,
        base_payloads=base_payloads(trusted.base_read, config),
        history_payloads=trusted.history,
        only_paths=only_paths,
        hints=hints,
    )
    result = _check(tree, trusted, opts, candidate, progress)
    tip = tree.rev if isinstance(tree, CommitTree) else (ctx.repo.head() if ctx.repo else None)
    report = Report(
        tool_version=qeguard.__version__,
        command="verify",
        target=str(root),
        started=started,
        duration_s=0.0,
        fail_on=result.effective.policy.fail_on,
        commit=tip,
        trust_source=trusted.source,
        tiers=tuple(result.tiers),
        findings=(*trusted.findings, *result.findings),
    )
    claims = override_claims(
        ctx, explicit=overrides, message=message, base=trusted.base, tip=tip, now=opts.now
    )
    report = override.apply(report, claims, local=local, matcher=result.effective.policy.matcher())
    return replace(report, duration_s=time.monotonic() - clock)


# -- every commit of a push ------------------------------------------------------------------


def run_verify_commits(
    root: Path,
    commits: Sequence[tuple[str, str | None]],
    *,
    base: str | None = None,
    trust_root: str | None = None,
    now: datetime | None = None,
    local: bool = False,
    overrides: Sequence[Override] = (),
    cwd: Path | None = None,
) -> Report:
    """Verify each of `commits` (`(commit, first parent)`, oldest first) against its
    parent: only the paths it changed and the manifest lines it changed (everything when
    it changes the policy), with trust walked from the root to that commit. `base` is a
    commit the remote already has: the trust root is looked for on its history, never on
    the pushed one. One report; each finding names its commit."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    ctx = open_context(root)
    repo = ctx.repo
    if repo is None:
        raise UsageError("verifying commits needs a git repository", where=str(root))
    hints = Hints(root=root, cwd=cwd)
    trust = _PushTrust(repo, pinned=resolve_root(repo, trust_root), base=base, now=now)
    findings: list[Finding] = []
    last: tuple[Trusted, Result] | None = None
    for commit, parent in commits:
        trusted = trust.at(commit, tip=commits[-1][0])
        if trusted is None:
            continue  # older than .qeguard/ (or the pinned root): nothing was protected
        tree = CommitTree(repo, commit)
        candidate = tree_config(tree, trusted.config)
        parent_read = _reader(repo, parent) if parent else None
        opts = Options(
            now=now or started,
            local=local,
            base_payloads=base_payloads(parent_read, trusted.config),
            history_payloads=trusted.history,
            only_paths=_commit_scope(repo, commit, parent, trusted.config, candidate, parent_read),
            hints=hints,
        )
        result = _check(tree, trusted, opts, candidate, None)
        for f in (*trusted.findings, *result.findings):
            findings.append(
                replace(
                    f,
                    message=f"commit {commit[:12]}: {f.message}",
                    details={**f.details, "commit": commit},
                    fingerprint="",  # recomputed: the same path in two commits is two findings
                )
            )
        last = (trusted, result)
    tip = commits[-1][0] if commits else None
    if base is not None and tip is not None and last is not None:
        dropped = dropped_change(repo, base, tip, label=base[:12], hints=hints)
        if dropped is not None:
            findings.append(dropped)
    claims = [override.Claim(override=o) for o in overrides]
    if tip is not None and commits[0][1] is not None:
        claims += override_claims(
            ctx, explicit=(), message=None, base=commits[0][1], tip=tip, now=now or started
        )
    effective = last[1].effective.policy if last else None
    report = Report(
        tool_version=qeguard.__version__,
        command="verify",
        target=str(root),
        started=started,
        duration_s=0.0,
        fail_on=effective.fail_on if effective else Severity.MEDIUM,
        commit=tip,
        trust_source=last[0].source if last else None,
        tiers=tuple(last[1].tiers) if last else (),
        findings=tuple(findings),
    )
    report = override.apply(
        report, claims, local=local, matcher=effective.matcher() if effective else None
    )
    return replace(report, duration_s=time.monotonic() - clock)


class _PushTrust:
    """Trust for each commit of a push from as few walks as possible: one walk to the tip
    serves every commit on its first-parent line (each step's state is kept); a commit of
    a merged side branch gets a walk of its own."""

    def __init__(
        self,
        repo: GitRepo,
        *,
        pinned: tuple[str, str] | None,
        base: str | None,
        now: datetime | None,
    ):
        self.repo, self.pinned, self.base, self.now = repo, pinned, base, now
        self.walked: list[tuple[Chain, dict[str, int], tuple[Finding, ...]]] = []
        # The first-parent history before the root (a first push sends all of it): one
        # listing instead of a walk per commit to learn that it predates protection.
        self.older: set[str] = set()

    def at(self, commit: str, *, tip: str) -> Trusted | None:
        if not self.walked:
            self._walk(tip)
        if commit in self.older:
            return None  # the root's own history: nothing was protected yet
        for chain, order, findings in self.walked:
            if commit in order:
                state = _state_at(chain, order, commit)
                return _trusted(chain, state, base=None, base_read=None, findings=findings)
        root = self.walked[0][0].root if self.walked else None
        if root is not None and self.repo.is_ancestor(commit, root):
            return None  # older than the root, on a merged side branch
        if not self._walk(commit):
            return None
        chain, order, findings = self.walked[-1]
        state = _state_at(chain, order, commit)
        return _trusted(chain, state, base=None, base_read=None, findings=findings)

    def _walk(self, target: str) -> bool:
        found = establish(
            self.repo,
            target,
            root=self.pinned[0] if self.pinned else None,
            root_reason=self.pinned[1] if self.pinned else "",
            base=self.base,
            now=self.now,
        )
        if found.chain is None:
            return False
        chain = found.chain
        if not self.walked:
            self.older = set(self.repo.first_parents(chain.root)) - {chain.root}
        order = {chain.root: 0}
        if not found.findings:
            line = reversed(self.repo.first_parent_since(chain.root, target))
            order.update({c: i for i, (c, _) in enumerate(line, 1)})
        else:
            order[target] = 1
        self.walked.append((chain, order, found.findings))
        return True


def _state_at(chain: Chain, order: Mapping[str, int], commit: str) -> TrustState:
    """The trust in force at `commit` of the walked line: after the last step up to it."""
    state, pos = chain.start, order[commit]
    for step, after in chain.after:
        if order.get(step, pos + 1) > pos:
            break
        state = after
    return state


def _commit_scope(
    repo: GitRepo,
    commit: str,
    parent: str | None,
    config: Config,
    candidate: Config | None,
    parent_read: Reader | None,
) -> frozenset[str] | None:
    """The paths a commit changed, plus the entries whose manifest lines it changed; None
    (everything) for a first commit or one that changes the policy."""
    if parent is None or parent_read is None or candidate is None:
        return None
    if (
        candidate.policy_bytes != config.policy_bytes
        or parent_read(POLICY_PATH) != config.policy_bytes
    ):
        return None
    changed = set(repo.changed_paths(parent, commit))
    for tier in config.policy.tiers:
        lpath = list_path(tier.name)
        if lpath in changed:
            changed |= changed_entries(parent_read(lpath), repo.read_at(commit, lpath))
    return frozenset(changed)
