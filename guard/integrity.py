"""The integrity check end to end: where trust comes from, which tree, and the report.

Trust sources, in order: `--trust-ref REF` (CI: the base branch), else `HEAD`, else the
working tree with a QG-TRUST-SOURCE finding (a first commit has nothing older to trust).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import guard
from guard.errors import ConfigError, EnvelopeError
from guard.gitio import GitRepo, open_repo
from guard.manifest import envelope_path
from guard.policy import POLICY_PATH
from guard.report.model import Finding, Location, Report, Severity
from guard.scan import Tree, WorkTree
from guard.trust.dsse import Envelope
from guard.verify import Config, Options, parse_config, verify
from guard.workspace import policy_path_for


@dataclass(frozen=True, kw_only=True, slots=True)
class Context:
    root: Path
    repo: GitRepo | None
    policy_path: str


def open_context(root: Path) -> Context:
    repo = open_repo(root)
    return Context(root=root, repo=repo, policy_path=policy_path_for(root))


def work_tree(ctx: Context) -> WorkTree:
    if ctx.repo is None:
        return WorkTree(ctx.root)
    return WorkTree(ctx.root, list_paths=ctx.repo.list_paths,
                    normalize_eol=ctx.repo.normalize_eol,
                    exec_bit_meaningful=ctx.repo.filemode)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def trusted_config(ctx: Context, tree: Tree, trust_ref: str | None
                   ) -> tuple[Config, Callable[[str], bytes | None] | None, list[Finding]]:
    """The config that decides trust, a reader for the base manifests, and any warning."""
    if trust_ref is not None:
        if ctx.repo is None:
            raise ConfigError("--trust-ref needs a git repository", where=str(ctx.root))
        rev = ctx.repo.resolve(trust_ref)
        read = _reader(ctx.repo, rev)
        config = parse_config(read, label=f"{trust_ref} {rev[:12]}", policy_path=ctx.policy_path)
        if config is None:
            raise ConfigError(f"no policy at {trust_ref}", where=f"{trust_ref}:{ctx.policy_path}",
                              hint="protect the base branch first: commit .qeguard/ there")
        return config, read, []
    if ctx.repo is not None and (head := ctx.repo.head()) is not None:
        read = _reader(ctx.repo, head)
        config = parse_config(read, label=f"HEAD {head[:12]}", policy_path=ctx.policy_path)
        if config is not None:
            return config, read, []
    config = parse_config(tree.read, label="working tree", policy_path=ctx.policy_path)
    if config is None:
        raise ConfigError("no policy found", where=ctx.policy_path,
                          hint="run `qeguard init --preset default` (or qemlflow, strict)")
    warning = Finding(
        rule="QG-TRUST-SOURCE", severity=Severity.INFO,
        title="Trust read from the working tree",
        message="no commit holds .qeguard/ yet, so policy and trust come from the working "
                "tree and could vouch for themselves",
        location=Location(path=ctx.policy_path), fix="git add .qeguard && git commit")
    return config, None, [warning]


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


def run_verify(root: Path, *, trust_ref: str | None = None, tree: Tree | None = None,
               now: datetime | None = None, local: bool | None = None,
               only_paths: frozenset[str] | None = None,
               progress: Callable[[int], None] | None = None) -> Report:
    started = datetime.now(UTC)
    clock = time.monotonic()
    ctx = open_context(root)
    tree = tree or work_tree(ctx)
    trusted, base_read, warnings = trusted_config(ctx, tree, trust_ref)
    candidate = parse_config(tree.read, label=tree.label, policy_path=ctx.policy_path)
    opts = Options(
        now=now or started,
        local=(trust_ref is None and not in_ci()) if local is None else local,
        base_payloads=base_payloads(base_read, trusted),
        only_paths=only_paths,
    )
    result = verify(tree, trusted, opts, candidate=candidate, progress=progress)
    return Report(
        tool_version=guard.__version__, command="verify", target=str(root),
        started=started, duration_s=time.monotonic() - clock,
        fail_on=result.effective.policy.fail_on,
        commit=ctx.repo.head() if ctx.repo else None,
        trust_source=trusted.label, tiers=tuple(result.tiers),
        findings=tuple(warnings + result.findings),
    )


__all__ = ["POLICY_PATH", "Context", "open_context", "run_verify", "trusted_config",
           "work_tree"]
