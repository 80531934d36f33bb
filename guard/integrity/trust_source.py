"""Where trust comes from: a trust root, and the first-parent history from it.

The root is a commit: `--trust-root` / `QEGUARD_TRUST_ROOT` (what CI pins), else the
first commit of the history that holds `.qeguard/policy.toml` (trust on first use). Its
policy and trust are trusted as they are. From there the history of `.qeguard/` is walked
commit by commit along first parents (TUF chains root metadata the same way): a change of
policy.toml or trust.toml comes into force only once the strictest tier's manifest, signed
by the threshold of the configuration in force before it, lists the new files. That may
happen in the changing commit or in any later one before the next change (co-signing
across commits); until then the old configuration stays in force. Along the way the
highest signed `sequence` of every tier is kept, so a manifest can never go back to an
older one.

`walk` is the pure part: the root's files, the commits that changed `.qeguard/` and a
blob reader in, the trust in force out. `establish` feeds it from git.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from qeguard.errors import ConfigError, EnvelopeError
from qeguard.git import GitRepo, HistoryCommit
from qeguard.hints import DEFAULT, Hints
from qeguard.integrity.checks.config_change import approval
from qeguard.integrity.config import Config, parse_config
from qeguard.integrity.dsse import Envelope
from qeguard.integrity.layout import (
    CONFIG_PATHS,
    MANIFEST_DIR,
    POLICY_PATH,
    QEGUARD_DIR,
    TRUST_PATH,
    envelope_path,
    list_path,
)
from qeguard.integrity.manifest import Payload
from qeguard.report import Finding, Location, Severity
from qeguard.rules import RuleId

ROOT_ENV = "QEGUARD_TRUST_ROOT"
_PREFIX = f"{QEGUARD_DIR}/"
_ENVELOPE_SUFFIX = ".dsse.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """One commit of the first-parent history that changed something under `.qeguard/`."""

    commit: str
    time: datetime  # the committer's claim; only ever moves the walk's clock forward
    changes: Mapping[str, str | None]  # path -> blob id after the commit (None: deleted)


@dataclass(frozen=True, kw_only=True, slots=True)
class Signed:
    """A tier's payload as seen at a commit of the history."""

    payload: bytes
    sequence: int
    commit: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """A config change along the history, and the commit by which it was approved."""

    commit: str
    approved_at: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TrustState:
    """The trust in force after some commit of the walk."""

    config: Config
    since: str  # the commit whose policy and trust these are (the root or a change)
    approved: tuple[Change, ...] = ()
    pending: str | None = None  # a later change, not approved (yet)
    highest: Mapping[str, Signed] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class Chain:
    """The result of a walk: the root, the trust at the tip, and after every step."""

    root: str
    root_reason: str
    start: TrustState  # at the root
    state: TrustState  # at the tip
    after: tuple[tuple[str, TrustState], ...] = ()  # (step commit, state), oldest first

    def describe(self) -> str:
        """What the report's `trust_source` says: the root (in full, so it can be pinned)
        and how trust got from there to the tip."""
        s = self.state
        text = f"trust root {self.root} ({self.root_reason})"
        if s.approved:
            text += f", {len(s.approved)} approved trust change(s), in force since {s.since[:12]}"
        if s.pending:
            text += f"; change at {s.pending[:12]} not approved"
        return text


def walk(
    root: str,
    root_files: Mapping[str, str],
    steps: Sequence[Step],
    read: Callable[[str], bytes],
    *,
    root_reason: str,
    root_time: datetime,
    now: datetime,
) -> Chain:
    """Walk `steps` (oldest first) from the root whose `.qeguard/` blobs are `root_files`
    (path -> blob id); `read` returns a blob's bytes by id. Pure but for `read`."""
    files = dict(root_files)
    cache: dict[str, bytes] = {}

    def blob(path: str) -> bytes | None:
        oid = files.get(path)
        if oid is None:
            return None
        if oid not in cache:
            cache[oid] = read(oid)
        return cache[oid]

    config = parse_config(blob, label=f"trust root {root[:12]}")
    if config is None:
        raise ConfigError(
            f"the trust root has no {POLICY_PATH}",
            where=f"trust root {root}",
            hint="pin the commit that added .qeguard/ (or a later one): --trust-root COMMIT",
        )
    state = start = TrustState(
        config=config, since=root, highest=_note_payloads({}, list(files), blob, root)
    )
    clock = min(root_time, now)
    pending: tuple[str, Config | None] | None = None  # (changing commit, its config)
    approved: list[Change] = []
    after: list[tuple[str, TrustState]] = []
    for step in steps:
        # Signers' validity windows are judged at the commit's time, never earlier than
        # a commit already walked and never in the future: a backdated commit cannot
        # revive a key that had expired when an earlier change was made.
        clock = max(clock, min(step.time, now))
        for path, oid in step.changes.items():
            if oid is None:
                files.pop(path, None)
            else:
                files[path] = oid
        touched = set(step.changes)
        if touched & set(CONFIG_PATHS):
            same = (
                blob(POLICY_PATH) == state.config.policy_bytes
                and (blob(TRUST_PATH) or b"") == state.config.trust_bytes
            )
            pending = None if same else (step.commit, _parse_or_none(blob, step.commit))
        strictest = state.config.policy.strictest.name
        lpath, epath = list_path(strictest), envelope_path(strictest)
        if (
            pending is not None
            and pending[1] is not None
            and touched & {lpath, epath, *CONFIG_PATHS}
            and not _replayed(blob(epath), state.highest.get(strictest))
            and approval(state.config, pending[1], blob(lpath), blob(epath), at=clock).approved
        ):
            approved.append(Change(commit=pending[0], approved_at=step.commit))
            state = TrustState(
                config=replace(pending[1], label=f"commit {pending[0][:12]}"),
                since=pending[0],
                approved=tuple(approved),
                highest=state.highest,
            )
            pending = None
        state = replace(
            state,
            highest=_note_payloads(state.highest, touched & files.keys(), blob, step.commit),
            pending=pending[0] if pending else None,
        )
        after.append((step.commit, state))
    return Chain(root=root, root_reason=root_reason, start=start, state=state, after=tuple(after))


def _replayed(envelope: bytes | None, best: Signed | None) -> bool:
    """True when `envelope` carries an older payload than one already seen: an old
    approval replayed to bring back an old trust (say, a removed key)."""
    if envelope is None or best is None:
        return False
    try:
        payload = Envelope.from_bytes(envelope, source="replay check").payload
        sequence = Payload.from_bytes(payload, source="replay check").sequence
    except EnvelopeError:
        return False  # approval rejects it anyway
    return payload != best.payload and sequence <= best.sequence


def _parse_or_none(blob: Callable[[str], bytes | None], commit: str) -> Config | None:
    # A config that does not parse (or was deleted) can never be approved; the verifier
    # reports it if it is still there in the tree under test.
    try:
        return parse_config(blob, label=f"commit {commit[:12]}")
    except ConfigError:
        return None


def _note_payloads(
    highest: Mapping[str, Signed],
    changed: Iterable[str],
    blob: Callable[[str], bytes | None],
    commit: str,
) -> Mapping[str, Signed]:
    """`highest` updated with the envelopes among the `changed` paths."""
    out = dict(highest)
    for path in changed:
        if not (path.startswith(MANIFEST_DIR + "/") and path.endswith(_ENVELOPE_SUFFIX)):
            continue
        tier = path[len(MANIFEST_DIR) + 1 : -len(_ENVELOPE_SUFFIX)]
        data = blob(path)
        if data is None:
            continue
        try:
            payload = Envelope.from_bytes(data, source=path).payload
            sequence = Payload.from_bytes(payload, source=path).sequence
        except EnvelopeError:
            continue  # a broken envelope is the verifier's finding if it is still there
        best = out.get(tier)
        if best is None or sequence > best.sequence:
            out[tier] = Signed(payload=payload, sequence=sequence, commit=commit)
    return out


# -- from git ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Established:
    """What `establish` found: the chain (None when no commit holds `.qeguard/` yet) and
    any blocking finding about the root or the history."""

    chain: Chain | None
    findings: tuple[Finding, ...] = ()


def shallow_error(what: str, hints: Hints = DEFAULT) -> ConfigError:
    return ConfigError(
        f"this is a shallow clone, so {what} cannot be walked",
        where="git history",
        hint=f"fetch the whole history: `{hints.unshallow()}` (GitHub Actions: "
        "actions/checkout with `fetch-depth: 0`)",
    )


def establish(
    repo: GitRepo,
    target: str,
    *,
    root: str | None,
    root_reason: str,
    base: str | None,
    now: datetime | None = None,
    hints: Hints = DEFAULT,
) -> Established:
    """The trust for commit `target`: walk from `root` (resolved commit id), or from the
    first commit with `.qeguard/` on `base`'s history (else `target`'s).

    One path-limited `git log` of `target`'s first-parent history gives every step; a
    root that changed `.qeguard/` (the first such commit, a trust change) is found among
    them, which also proves it is on that history. Only a root that changed nothing
    there costs a second walk (`rev-list`) to place it.
    """
    now = now or datetime.now(UTC)
    shallow = repo.is_shallow()
    if shallow and base is not None:
        raise shallow_error("the trust ref's history", hints)
    history = repo.path_history(target, _PREFIX)
    if root is None:
        if shallow:
            raise shallow_error("the trust history (no --trust-root to start from)", hints)
        source = history if base is None or base == target else repo.path_history(base, _PREFIX)
        found = _first_with_policy(source)
        if found is None:
            return Established(chain=None)
        root = source[found].hexsha
        where = "first commit with .qeguard/" + (
            " on the trust ref" if source is not history else ""
        )
        root_reason = f"{where}: trust on first use; pin it with --trust-root"
    index = next((i for i, c in enumerate(history) if c.hexsha == root), None)
    if index is not None:
        files = _files_after(history[: index + 1])
        steps = [_step(c) for c in history[index + 1 :]]
        chain = _walk(repo, root, files, steps, root_reason, _when(history[index].time), now)
        return Established(chain=chain)
    files = {p: c.blob for p, c in repo.tree_files(root, _PREFIX).items() if c.blob}
    root_time = _when(repo.commit_time(root))
    problem = _root_problem(
        repo, root, target, root_reason=root_reason, shallow=shallow, hints=hints
    )
    if problem is not None:
        # Nothing in this history can be trusted: verify against the root's own trust.
        chain = _walk(repo, root, files, [], root_reason, root_time, now)
        return Established(chain=chain, findings=(problem,))
    after_root = {c for c, _ in repo.first_parent_since(root, target)}
    steps = [_step(c) for c in history if c.hexsha in after_root]
    return Established(chain=_walk(repo, root, files, steps, root_reason, root_time, now))


def dropped_change(
    repo: GitRepo, base: str, target: str, *, label: str, hints: Hints = DEFAULT
) -> Finding | None:
    """A finding when the newest config change on `base` is not in `target`'s history: a
    rewritten branch could otherwise drop a key removal and verify under the old keys."""
    latest = repo.latest_change(base, CONFIG_PATHS)
    if latest is None or repo.is_ancestor(latest, target):
        return None
    return Finding(
        rule=RuleId.TRUST_HISTORY,
        severity=Severity.CRITICAL,
        title="Trust change missing from this history",
        message=f"{label} changed policy/trust in commit {latest[:12]}, which is not an "
        f"ancestor of {target[:12]}: the history under test lacks (or rewrote away) an "
        "approved trust change",
        location=Location(path=POLICY_PATH),
        fix=f"rebase onto {label} ({hints.rebase(label)}) or merge it, then verify again",
        details={"commit": latest},
    )


def _root_problem(
    repo: GitRepo,
    root: str,
    target: str,
    *,
    root_reason: str,
    shallow: bool,
    hints: Hints = DEFAULT,
) -> Finding | None:
    if root == target:
        return None
    pairs = repo.first_parent_since(root, target)
    if pairs and pairs[-1][1] == root:
        return None
    if shallow:
        raise shallow_error(f"the history from the trust root {root[:12]}", hints)
    ancestor = repo.is_ancestor(root, target)
    why = (
        "is an ancestor only through a merged side branch, not on the first-parent history"
        if ancestor
        else "is not an ancestor: the history was rewritten, or the commit is unrelated"
    )
    return Finding(
        rule=RuleId.TRUST_ROOT,
        severity=Severity.CRITICAL,
        title="Trust root not in this history",
        message=f"the trust root {root} ({root_reason}) {why} of {target[:12]}; "
        "verifying with the root's own policy and trust",
        location=Location(path=POLICY_PATH),
        fix="verify a commit that descends from the root along first parents, or pin the "
        f"root anew after review ({hints.pin_root('COMMIT')}, or {ROOT_ENV})",
        details={"root": root, "ancestor": ancestor},
    )


def _first_with_policy(history: Sequence[HistoryCommit]) -> int | None:
    """The index of the first commit that holds the policy."""
    files: set[str] = set()
    for i, c in enumerate(history):
        for ch in c.changes:
            if ch.blob is None:
                files.discard(ch.path)
            else:
                files.add(ch.path)
        if POLICY_PATH in files:
            return i
    return None


def _files_after(history: Sequence[HistoryCommit]) -> dict[str, str]:
    """The `.qeguard/` blobs after these commits, applied in order from nothing (a whole
    first-parent history of the folder, so that is the tree's state)."""
    files: dict[str, str] = {}
    for c in history:
        for ch in c.changes:
            if ch.blob is None:
                files.pop(ch.path, None)
            else:
                files[ch.path] = ch.blob
    return files


def _step(c: HistoryCommit) -> Step:
    return Step(commit=c.hexsha, time=_when(c.time), changes={ch.path: ch.blob for ch in c.changes})


def _when(stamp: int) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


def _walk(
    repo: GitRepo,
    root: str,
    files: Mapping[str, str],
    steps: Sequence[Step],
    reason: str,
    root_time: datetime,
    now: datetime,
) -> Chain:
    # Every blob the walk may read, but the lists, in one `cat-file --batch`: a list may
    # be large and only the strictest tier's is read, at a config change.
    wanted = [*files.values(), *(oid for s in steps for oid in s.changes.values() if oid)]
    paths = {oid: p for p, oid in files.items()} | {
        oid: p for s in steps for p, oid in s.changes.items() if oid
    }
    cache = repo.read_blobs(oid for oid in wanted if not paths[oid].endswith(".list"))

    def read(oid: str) -> bytes:
        data = cache.get(oid)
        return data if data is not None else repo.read_blob(oid)

    return walk(root, files, steps, read, root_reason=reason, root_time=root_time, now=now)
