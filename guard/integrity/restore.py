"""Putting protected files back to their signed content from git's object database.

Only content that a *verified* manifest vouches for is ever written: the manifests are
checked against the trust from HEAD (or `--trust-ref`), a candidate blob is hashed the way
`guard.scan` hashes the working tree, and it is written only when that hash is the signed
one. Whatever was in the way is kept under `.qeguard/quarantine/<stamp>/<path>` first.

Candidates, cheapest first: HEAD's tree at the path, the index, the path in any commit
(`git log --all`), and last every blob in the object database.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from git.exc import GitCommandError
from qeguard.fsutil import atomic_write
from qeguard.git import GitRepo
from qeguard.integrity.checks.envelope import Options, TierCheck, check_tier
from qeguard.integrity.config import Config
from qeguard.integrity.gate import Context, base_payloads, in_ci, trusted_config
from qeguard.integrity.layout import QUARANTINE_DIR, envelope_path, list_path
from qeguard.integrity.manifest import MODE_EXEC, Entry, Kind, unsafe_path_reason
from qeguard.integrity.policy import Tier
from qeguard.integrity.trees.base import Observed, Seen, Tree, hash_bytes
from qeguard.integrity.trees.work import observe_path
from qeguard.report import Finding, TierVerdict
from qeguard.rules import RuleId

# Findings whose cause a restore can undo; ADDED is a new file, not a damaged one.
RESTORABLE_RULES = frozenset(
    {RuleId.INT_MODIFIED, RuleId.INT_MISSING, RuleId.INT_KIND, RuleId.INT_SYMLINK, RuleId.INT_EXEC}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedEntry:
    entry: Entry
    tier: Tier


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedState:
    """What the verified manifests vouch for, tier by tier."""

    config: Config
    checks: list[TierCheck]
    # Entries of tiers whose manifest verified; only these may be restored.
    entries: dict[str, SignedEntry]
    # Tier name -> why its manifest is not trusted for restores.
    untrusted: dict[str, str]
    warnings: list[Finding] = field(default_factory=list)


def untrusted_reason(check: TierCheck) -> str | None:
    """Why a tier's entries must not steer a restore, or None when they may. The
    threshold verdict is the envelope check's (relaxed only when it ran `local`)."""
    if check.entries is None or check.payload is None:
        return "; ".join(f.message for f in check.findings) or "no valid manifest"
    bad = [f for f in check.findings if f.rule in (RuleId.SIG_ROLLBACK, RuleId.SIG_EXPIRED)]
    if bad:
        return bad[0].message
    if check.verdict is TierVerdict.NOT_MET:
        return (
            f"tier {check.tier.name!r} has {len(check.signers)} of {check.tier.threshold} "
            "required trusted signature(s)"
        )
    return None


def load_signed(
    ctx: Context,
    tree: Tree,
    *,
    now: datetime | None = None,
    trust_ref: str | None = None,
    local: bool | None = None,
) -> SignedState:
    """Check every tier's manifest in `tree` against the trusted config."""
    trusted = trusted_config(ctx, tree, trust_ref)
    config, warnings = trusted.config, list(trusted.findings)
    # A restore runs by hand on a developer's machine: one valid signature is enough
    # there, as in the hooks; CI or `--trust-ref` (or local=False) wants the threshold.
    is_local = (trust_ref is None and not in_ci()) if local is None else local
    opts = Options(
        now=now or datetime.now(UTC),
        local=is_local,
        base_payloads=base_payloads(trusted.base_read, config),
        history_payloads=trusted.history,
    )
    checks: list[TierCheck] = []
    entries: dict[str, SignedEntry] = {}
    untrusted: dict[str, str] = {}
    for tier in config.policy.tiers:
        check = check_tier(
            tier,
            config.policy,
            config.trust,
            tree.read(list_path(tier.name)),
            tree.read(envelope_path(tier.name)),
            opts,
        )
        checks.append(check)
        reason = untrusted_reason(check)
        if reason is not None:
            untrusted[tier.name] = reason
            continue
        for e in check.entries or ():
            if unsafe_path_reason(e.path) is None:
                entries.setdefault(e.path, SignedEntry(entry=e, tier=tier))
    return SignedState(
        config=config, checks=checks, entries=entries, untrusted=untrusted, warnings=warnings
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    data: bytes  # the bytes to write (the working-tree form), or a symlink's target
    source: str  # "HEAD:core/a.py", "index", "commit 1a2b3c4d:core/a.py", "blob 1a2b3c4d"


class BlobFinder:
    """Finds, in the repository's objects, content whose hash is an entry's signed hash."""

    def __init__(self, repo: GitRepo):
        self.repo = repo

    def matches(self, entry: Entry, data: bytes) -> bool:
        if entry.kind is Kind.SYMLINK:
            return hashlib.sha256(data).hexdigest() == entry.sha256
        # Blobs are already in git's clean form: never normalised.
        return hash_bytes(data, normalize_eol=False) == entry.sha256

    def find(self, entry: Entry, *, deep: bool = True) -> Candidate | None:
        tried: set[str] = set()
        for blob, source in self._quick(entry.path):
            if blob in tried:
                continue
            tried.add(blob)
            found = self._accept(entry, blob, source)
            if found is not None:
                return found
        if not deep:
            return None
        for blob, data in self._all_blobs():
            if blob not in tried and self.matches(entry, data):
                found = self._accept(entry, blob, f"blob {blob[:12]}", data=data)
                if found is not None:
                    return found
        return None

    def _quick(self, path: str) -> Iterator[tuple[str, str]]:
        head = self.repo.head()
        if head is not None:
            try:
                item = self.repo.repo.commit(head).tree / path
                if item.type == "blob":
                    yield item.hexsha, f"HEAD:{path}"
            except KeyError:
                pass
        for record in self._git("ls-files", "-s", "-z", "--", path).split(b"\0"):
            meta, _, name = record.partition(b"\t")
            parts = meta.split()
            if len(parts) == 3 and os.fsdecode(name) == path:
                yield parts[1].decode("ascii"), "index"
        # Every version the path had in any commit (branches, tags, stash), newest first.
        log = self._git(
            "log", "--all", "--no-renames", "--raw", "--no-abbrev", "--format=commit %H", "--", path
        )
        commit = ""
        for raw in log.splitlines():
            line = raw.decode("utf-8", "surrogateescape")
            if line.startswith("commit "):
                commit = line[7:]
            elif line.startswith(":"):
                fields = line.split("\t", 1)[0].split()
                for blob in fields[3:1:-1]:
                    if blob.strip("0"):
                        yield blob, f"commit {commit[:12]}:{path}"

    def _accept(
        self, entry: Entry, blob: str, source: str, data: bytes | None = None
    ) -> Candidate | None:
        if data is None:
            try:
                data = self._read_blob(blob)
            except (GitCommandError, ValueError, OSError):
                return None
        if not self.matches(entry, data):
            return None
        if entry.kind is Kind.FILE and self.repo.eol_converted((entry.path,)):
            # Give the working tree its checkout form (CRLF where git would write CRLF),
            # as long as that form still hashes to the signed value.
            try:
                smudged = self._git("cat-file", "--filters", f"--path={entry.path}", blob)
            except GitCommandError:
                smudged = data
            if smudged != data and self.matches(entry, smudged):
                data = smudged
        return Candidate(data=data, source=source)

    def _read_blob(self, blob: str) -> bytes:
        stream = self.repo.repo.odb.stream(bytes.fromhex(blob))
        if stream.type != b"blob":
            raise ValueError(f"{blob} is a {stream.type!r}")
        data: bytes = stream.read()
        return data

    def _all_blobs(self) -> Iterator[tuple[str, bytes]]:
        """Every blob in the object database, streamed by one `git cat-file` process."""
        proc = subprocess.Popen(
            ["git", "cat-file", "--batch-all-objects", "--unordered", "--batch"],
            cwd=self.repo.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        try:
            while header := proc.stdout.readline():
                parts = header.split()
                if len(parts) != 3:
                    break
                size = int(parts[2])
                data = proc.stdout.read(size)
                proc.stdout.read(1)  # the newline after each object
                if parts[1] == b"blob":
                    yield parts[0].decode("ascii"), data
        finally:
            proc.kill()
            proc.wait()

    def _git(self, *args: str) -> bytes:
        out: bytes = self.repo.repo.git.execute(
            ["git", "--literal-pathspecs", *args], stdout_as_string=False
        )
        return out


class Action(enum.Enum):
    RESTORED = "restored"
    WOULD_RESTORE = "would restore"
    CLEAN = "clean"
    NOT_FOUND = "not found"
    BLOCKED = "blocked"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    path: str
    tier: str
    action: Action
    message: str
    source: str | None = None
    backup: str | None = None  # repository-relative path of the quarantined copy

    @property
    def ok(self) -> bool:
        return self.action in (Action.RESTORED, Action.WOULD_RESTORE, Action.CLEAN)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "path": self.path,
            "tier": self.tier,
            "action": self.action.value,
            "message": self.message,
            "source": self.source,
            "backup": self.backup,
        }


def new_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


class Restorer:
    """Restores signed entries into the working tree at `root`."""

    def __init__(
        self,
        root: Path,
        finder: BlobFinder,
        *,
        eol: Callable[[Iterable[str]], AbstractSet[str]],
        exec_bit_meaningful: bool,
        stamp: Callable[[], str] = new_stamp,
    ):
        self.root = root
        self.finder = finder
        self.eol = eol
        self.exec_bit_meaningful = exec_bit_meaningful and os.name == "posix"
        self._stamp = stamp

    def observe(self, path: str) -> Observed:
        return observe_path(
            str(self.root),
            path,
            normalize_eol=bool(self.eol((path,))),
            dir_ok=lambda d: self._blocker(d + "/x") is None,
        )

    def is_clean(self, entry: Entry, seen: Observed) -> bool:
        if entry.kind is Kind.SYMLINK:
            return seen.seen is Seen.SYMLINK and seen.sha256 == entry.sha256
        return (
            seen.seen is Seen.FILE
            and seen.sha256 == entry.sha256
            and (not self.exec_bit_meaningful or seen.mode == entry.mode)
        )

    def restore(self, signed: SignedEntry, *, dry_run: bool = False, deep: bool = True) -> Outcome:
        entry, tier = signed.entry, signed.tier.name
        path = entry.path

        def out(action: Action, message: str, **kw: str | None) -> Outcome:
            return Outcome(path=path, tier=tier, action=action, message=message, **kw)

        reason = unsafe_path_reason(path)
        if reason is not None:
            return out(Action.BLOCKED, f"unsafe manifest path: {reason}")
        if entry.kind is Kind.GITLINK:
            # git moves a submodule; a checkout of the signed commit is git's to make.
            return out(
                Action.BLOCKED,
                f"a submodule signed at commit {entry.sha256[:12]}; run "
                f"`git -C {path} checkout {entry.sha256}` (or `git submodule update`)",
            )
        blocker = self._blocker(path)
        if blocker is not None:
            return out(Action.BLOCKED, f"{blocker}; move it away, then restore again")
        seen = self.observe(path)
        if self.is_clean(entry, seen):
            return out(Action.CLEAN, "already matches its signed content")
        if seen.seen is Seen.UNREADABLE:
            return out(
                Action.BLOCKED,
                f"cannot read the current file ({seen.error}); fix its permissions first",
            )
        if entry.kind is Kind.FILE and seen.seen is Seen.FILE and seen.sha256 == entry.sha256:
            # Only the exec bit differs: the content is the signed content already.
            if dry_run:
                return out(Action.WOULD_RESTORE, f"would set mode {entry.mode}", source="mode")
            self._chmod(path, entry)
            return self._confirm(
                signed, out(Action.RESTORED, f"mode set to {entry.mode}", source="mode")
            )
        candidate = self.finder.find(entry, deep=deep)
        if candidate is None:
            return out(
                Action.NOT_FOUND,
                f"no object in the repository has the signed content "
                f"(sha256 {entry.sha256[:16]}...); nothing written",
            )
        if dry_run:
            return out(
                Action.WOULD_RESTORE,
                f"would restore from {candidate.source}",
                source=candidate.source,
            )
        try:
            backup = self._quarantine(path, seen) if seen.seen is not Seen.MISSING else None
            self._write(path, entry, candidate)
        except OSError as exc:
            return out(Action.FAILED, f"cannot write: {exc.strerror or exc}")
        kept = f"; tampered copy kept at {backup}" if backup else ""
        return self._confirm(
            signed,
            out(
                Action.RESTORED,
                f"restored from {candidate.source}{kept}",
                source=candidate.source,
                backup=backup,
            ),
        )

    def _confirm(self, signed: SignedEntry, outcome: Outcome) -> Outcome:
        if self.is_clean(signed.entry, self.observe(signed.entry.path)):
            return outcome
        return Outcome(
            path=outcome.path,
            tier=outcome.tier,
            action=Action.FAILED,
            message="the file still differs after writing (a git filter or another "
            "process changed it)",
            source=outcome.source,
            backup=outcome.backup,
        )

    def _blocker(self, path: str) -> str | None:
        """Why writing `path` could leave the repository: a parent that is not a folder."""
        parts = path.split("/")[:-1]
        current = self.root
        for part in parts:
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                return None  # missing folders are created
            if stat.S_ISLNK(st.st_mode):
                return f"{current.relative_to(self.root).as_posix()} is a symlink"
            if not stat.S_ISDIR(st.st_mode):
                return f"{current.relative_to(self.root).as_posix()} is not a folder"
        return None

    def _quarantine(self, path: str, seen: Observed) -> str:
        qroot = self.root / QUARANTINE_DIR
        qroot.mkdir(parents=True, exist_ok=True)
        ignore = qroot / ".gitignore"
        if not ignore.exists():
            # Tampered copies must never be committed, whatever the repository's .gitignore.
            atomic_write(ignore, b"*\n")
        rel = f"{QUARANTINE_DIR}/{self._stamp()}/{path}"
        dest = self.root / rel
        n = 0
        while os.path.lexists(dest):
            n += 1
            dest = self.root / f"{rel}.{n}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = self.root / path
        if seen.seen is Seen.SYMLINK:
            os.symlink(os.readlink(src), dest)
        elif seen.seen is Seen.FILE:
            # A copy, so readers of `path` never see it missing; the write below replaces it.
            shutil.copy2(src, dest, follow_symlinks=False)
        else:
            os.rename(src, dest)  # a folder or special file in the way: move it aside
        return dest.relative_to(self.root).as_posix()

    def _write(self, path: str, entry: Entry, candidate: Candidate) -> None:
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind is Kind.SYMLINK:
            tmp = full.with_name(f".{full.name}.qeguard-link.tmp")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(os.fsdecode(candidate.data), tmp)
            try:
                os.replace(tmp, full)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            return
        if os.path.islink(full):
            os.unlink(full)  # atomic_write would otherwise copy the link's target mode
        atomic_write(full, candidate.data, mode=self._mode(entry))

    def _mode(self, entry: Entry) -> int | None:
        if not self.exec_bit_meaningful:
            return None
        umask = os.umask(0)
        os.umask(umask)
        return (0o777 if entry.mode == MODE_EXEC else 0o666) & ~umask

    def _chmod(self, path: str, entry: Entry) -> None:
        full = self.root / path
        current = os.lstat(full).st_mode & 0o7777
        # Exec for whoever may read, as git does on checkout.
        new = current | ((current & 0o444) >> 2) if entry.mode == MODE_EXEC else current & ~0o111
        os.chmod(full, new)


def restorer_for(ctx: Context, *, stamp: Callable[[], str] = new_stamp) -> Restorer:
    """A restorer for a git work tree, using git's line-end and file-mode settings."""
    from qeguard.errors import GitError

    if ctx.repo is None:
        raise GitError(
            "restoring needs a git repository (the signed content comes from git objects)",
            where=str(ctx.root),
            hint="run `git init` and commit",
        )
    return Restorer(
        ctx.root,
        BlobFinder(ctx.repo),
        eol=ctx.repo.eol_converted,
        exec_bit_meaningful=ctx.repo.filemode,
        stamp=stamp,
    )


__all__ = [
    "RESTORABLE_RULES",
    "Action",
    "BlobFinder",
    "Candidate",
    "Outcome",
    "Restorer",
    "SignedEntry",
    "SignedState",
    "load_signed",
    "new_stamp",
    "restorer_for",
    "untrusted_reason",
]
