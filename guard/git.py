"""Everything that touches git: files at a commit, the index, config.

Trust is read from commits (HEAD or `--trust-ref`), never from the change under test,
so this module is where "where trust comes from" is implemented.

What the hooks and `verify` need runs git directly (one `cat-file --batch` process
serves every object read); gitpython, which costs a pre-commit hook about 50 ms just to
import, is loaded only by what walks history or commits (`commits_between`, `resolve`,
`CommitTree`, restore, status).
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import subprocess
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING

from qeguard.errors import GitError

if TYPE_CHECKING:
    import git

GIT_FILE = 0o100644
GIT_EXEC = 0o100755
GIT_LINK = 0o120000
GIT_SUBMODULE = 0o160000
# Read size when a blob is streamed into a hasher: the most one blob adds to memory.
BLOB_CHUNK = 1 << 20
# Paths per `git ls-files` call: well under any OS argument-length limit.
_ARG_BATCH = 2000
# Above this many paths one full `ls-files` is cheaper than many filtered ones.
_FULL_LISTING = 20000


# A revision as qeguard accepts it: a name, then ~N / ^N steps (no @{...}, no :/search).
_REV = re.compile(r"(?P<name>[^~^:@\s-][^~^:\s]*?)(?P<suffix>(?:[~^][0-9]*)*)")
_HEX = re.compile(r"[0-9a-f]{4,64}")
_FULL_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# Refs git keeps outside refs/; a push can never create them.
_PSEUDO_REFS = frozenset({"HEAD", "FETCH_HEAD", "ORIG_HEAD", "MERGE_HEAD"})


_LS_FILES = ("ls-files", "-z", "--cached", "--others", "--exclude-standard")


def _split_paths(out: bytes) -> list[str]:
    # One decode for all paths (100,000 on a large tree); a path listed twice (once per
    # conflict stage) is kept once.
    paths = dict.fromkeys(os.fsdecode(out).split("\0"))
    paths.pop("", None)
    return list(paths)


class GitRepo:
    """A git work tree."""

    def __init__(self, root: Path):
        self.root = Path(os.path.abspath(root))
        self._objects = _CatFile(self.root)
        self._eol_cache: dict[str, bool] = {}
        self._autocrlf_value: str | None = None

    @cached_property
    def repo(self) -> git.Repo:
        """gitpython's view of the repository, for history and commits (imported here:
        the hooks never need it)."""
        import git
        from git.exc import InvalidGitRepositoryError, NoSuchPathError

        try:
            repo = git.Repo(self.root, search_parent_directories=False)
        except (InvalidGitRepositoryError, NoSuchPathError):
            raise GitError(
                "not a git repository",
                where=str(self.root),
                hint="run `git init`, or pass -C with the repository root",
            ) from None
        if repo.working_tree_dir is None:
            raise GitError("a bare repository has no working tree", where=str(self.root))
        return repo

    def _run(self, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
        # Literal pathspecs: a protected file named `*.py` or `:(top)x` means itself.
        env = {**os.environ, "GIT_LITERAL_PATHSPECS": "1"}
        try:
            proc = subprocess.run(
                ["git", *args], cwd=self.root, env=env, capture_output=True, check=False
            )
        except OSError as exc:
            raise GitError(f"cannot run git: {exc}", where=str(self.root)) from None
        if proc.returncode not in ok:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise GitError(f"git {args[0]} failed: {err}", where=str(self.root))
        return proc.stdout

    def staged_paths(self) -> list[str]:
        """Paths whose index entry differs from HEAD (added, changed, deleted, mode).

        Reads the index against HEAD's tree only; the working tree is never looked at,
        so this costs the same for 10 or 100,000 files in the repository.
        """
        head = self.head()
        if head is None:
            return [p for p, _ in iter_ls_files(self._run("ls-files", "--stage", "-z"))]
        out = self._run(
            "diff-index",
            "--cached",
            "--no-renames",
            "--name-only",
            "-z",
            "--ignore-submodules=none",
            head,
        )
        return [os.fsdecode(raw) for raw in out.split(b"\0") if raw]

    def index_entries(self, paths: Iterable[str] | None = None) -> dict[str, IndexEntry]:
        """Index entries (stage 0, or the first conflicting stage) for `paths`, or all."""
        wanted = None if paths is None else sorted(set(paths))
        if wanted is None or len(wanted) > _FULL_LISTING:
            chunks: list[list[str]] = [[]]
        else:
            chunks = [wanted[i : i + _ARG_BATCH] for i in range(0, len(wanted), _ARG_BATCH)]
        out: dict[str, IndexEntry] = {}
        for chunk in chunks:
            if wanted is not None and not chunk:
                continue
            raw = self._run("ls-files", "--stage", "-z", *(["--", *chunk] if chunk else []))
            for path, entry in iter_ls_files(raw):
                out.setdefault(path, entry)
        if wanted is not None:
            keep = set(wanted)
            out = {p: e for p, e in out.items() if p in keep}
        return out

    def read_blob(self, hexsha: str) -> bytes:
        """An object's bytes (through one `git cat-file --batch` process for all reads)."""
        found = self._objects.read(hexsha)
        if found is None:
            raise GitError(f"object {hexsha} is missing", where=str(self.root))
        return found[2]

    def read_blobs(self, ids: Iterable[str]) -> dict[str, bytes]:
        """Many objects' bytes from one `git cat-file --batch` (ids missing from the
        object database are left out)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        proc = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=self.root,
            input="".join(f"{oid}\n" for oid in wanted).encode("ascii"),
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise GitError(
                f"git cat-file failed: {proc.stderr.decode('utf-8', 'replace').strip()}",
                where=str(self.root),
            )
        out, data, pos = {}, proc.stdout, 0
        for oid in wanted:
            end = data.index(b"\n", pos)
            header = data[pos:end].split(b" ")
            pos = end + 1
            if len(header) != 3:
                continue  # "<oid> missing"
            size = int(header[2])
            out[oid] = data[pos : pos + size]
            pos += size + 1
        return out

    def blob_digest(self, hexsha: str) -> tuple[str, int]:
        """SHA-256 and size of a blob, streamed from the one `git cat-file --batch`
        process into the hasher in chunks: memory stays flat whatever the blob's size
        (a hook reading a 512 MiB file whole would hold all of it)."""
        found = self._objects.digest(hexsha)
        if found is None:
            raise GitError(f"object {hexsha} is missing", where=str(self.root))
        return found

    def commits_between(self, base: str, tip: str) -> list[CommitInfo]:
        """Commits reachable from `tip` but not from `base`, oldest first."""
        out: list[CommitInfo] = []
        for c in reversed(list(self.repo.iter_commits(f"{base}..{tip}"))):
            author = f"{c.author.name} <{c.author.email}>" if c.author.email else c.author.name
            parent = c.parents[0] if c.parents else None
            changed = self._changed_paths(parent.hexsha if parent else None, c.hexsha)
            out.append(
                CommitInfo(
                    hexsha=c.hexsha,
                    author=str(author),
                    when=c.authored_datetime.isoformat(),
                    message=c.message
                    if isinstance(c.message, str)
                    else c.message.decode("utf-8", "replace"),
                    changed=tuple(changed),
                )
            )
        return out

    def _changed_paths(self, parent: str | None, commit: str) -> list[str]:
        """Paths a commit changed against its parent, as raw bytes from git (a name with a
        newline or invalid UTF-8 is a name like any other, never a parse error)."""
        base = ["--root", commit] if parent is None else [parent, commit]
        out = self._run("diff-tree", "-r", "-z", "--no-renames", "--name-only", *base)
        names = out.split(b"\0")
        if parent is None and names and names[0] == commit.encode("ascii"):
            names = names[1:]  # `--root` prints the commit id first
        return sorted({os.fsdecode(n) for n in names if n})

    def list_paths(self) -> list[str]:
        """Tracked and untracked files that git does not ignore (deleted tracked ones too)."""
        return _split_paths(self._run(*_LS_FILES))

    def start_index_listing(self) -> Callable[[], bytes]:
        """Start `git ls-files -z` (the index's paths, NUL-separated and sorted; a
        conflicted path once per stage); the returned function waits for its output."""
        import tempfile

        # A file, not a pipe: git would stall on a full pipe until the caller reads it.
        # `collect` closes them.
        out = tempfile.TemporaryFile()  # noqa: SIM115
        err = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                ["git", "ls-files", "-z"],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        except OSError:
            out.close()
            err.close()
            data = self._run("ls-files", "-z")
            return lambda: data

        def collect() -> bytes:
            with out, err:
                if proc.wait() != 0:
                    err.seek(0)
                    raise GitError(
                        f"git ls-files failed: {err.read().decode('utf-8', 'replace').strip()}",
                        where=str(self.root),
                    )
                out.seek(0)
                return out.read()

        return collect

    def ignored(self, paths: Sequence[str]) -> set[str]:
        """Which of `paths` (untracked ones; a folder ends with "/") git's ignore rules
        exclude. The rules alone (`--no-index`): with the index, git would scan all of
        it once per path, and tracked paths are never asked about."""
        proc = subprocess.run(
            ["git", "check-ignore", "-z", "--stdin", "--no-index"],
            cwd=self.root,
            input=b"".join(os.fsencode(p) + b"\0" for p in paths),
            capture_output=True,
            check=False,
        )
        if proc.returncode not in (0, 1):  # 1: none of them is ignored
            raise GitError(
                f"git check-ignore failed: {proc.stderr.decode('utf-8', 'replace').strip()}",
                where=str(self.root),
            )
        return {os.fsdecode(p) for p in proc.stdout.split(b"\0") if p}

    def is_ignored(self, rel: str) -> bool:
        """Whether git ignores `rel` (POSIX, from the root; it need not exist). A tracked
        file is never ignored: the next `git commit -a` takes it."""
        # Not `_run`: check-ignore takes path names, and refuses the literal-pathspec
        # setting `_run` uses.
        proc = subprocess.run(
            ["git", "check-ignore", "-q", "--", rel], cwd=self.root, capture_output=True
        )
        if proc.returncode == 1:  # not ignored
            return False
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise GitError(f"git check-ignore failed: {err}", where=str(self.root))
        return True

    def head(self) -> str | None:
        """HEAD's commit, or None on an unborn branch (no commit yet)."""
        found = self._objects.read("HEAD^{commit}", contents=False)
        return found[0] if found is not None else None

    def resolve(self, rev: str, *, where: str = "revision", branch: bool = False) -> str:
        """The commit id `rev` names, resolved without git's lookup order.

        A full object id, `HEAD` (and git's other pseudo-refs) and a full ref name
        (`refs/remotes/origin/main`) always work; a short name must match exactly one ref
        (`main` is ambiguous when a branch and a tag share it), and with `branch` it must
        not be a tag: a pushed tag named `main` or `origin/main` can never stand in for the
        branch. `~N`/`^N` suffixes apply after the name is resolved. `where` names the
        option in errors.
        """
        m = _REV.fullmatch(rev)
        if m is None:
            raise GitError(
                f"cannot use {rev!r} here",
                where=where,
                hint="name a branch, tag or commit id (optionally with ~N or ^N)",
            )
        name, suffix = m.group("name"), m.group("suffix")
        if _FULL_HEX.fullmatch(name) or name in _PSEUDO_REFS:
            full = name
        else:
            full = self._unique_ref(name, where=where, branch=branch)
        try:
            out = self._run(
                "rev-parse", "--verify", "--quiet", "--end-of-options", f"{full}{suffix}^{{commit}}"
            )
        except GitError:
            out = b""
        sha = out.decode("ascii", "replace").strip()
        if not _FULL_HEX.fullmatch(sha):
            raise GitError(
                f"unknown revision {rev!r}",
                where=where,
                hint="fetch it first (`git fetch origin main`) or name an existing "
                "branch, tag or commit",
            )
        return sha

    def _unique_ref(self, name: str, *, where: str, branch: bool) -> str:
        """The one full ref a short name means, or an error naming the candidates."""
        if name.startswith("refs/"):
            patterns = [name]
        else:
            patterns = [
                f"refs/{name}",
                f"refs/tags/{name}",
                f"refs/heads/{name}",
                f"refs/remotes/{name}",
                f"refs/remotes/{name}/HEAD",
            ]
        out = self._run("for-each-ref", "--format=%(refname)", *patterns)
        wanted = set(patterns)
        found = sorted({r for r in out.decode("utf-8", "replace").splitlines() if r in wanted})
        if name.startswith("refs/"):
            if not found:
                raise GitError(f"no ref {name!r}", where=where, hint="`git fetch` it first")
            return name
        if _HEX.fullmatch(name):
            # A short commit id that a ref name also matches would be guessed by git.
            if found:
                raise GitError(
                    f"{name!r} is both a ref ({', '.join(found)}) and maybe a commit id",
                    where=where,
                    hint="pass the full commit id or the full ref name",
                )
            return name
        if len(found) > 1:
            raise GitError(
                f"{name!r} is ambiguous: it names {', '.join(found)}",
                where=where,
                hint=f"pass the full name of the one you mean, e.g. {found[-1]}",
            )
        if found and branch and found[0].startswith("refs/tags/"):
            raise GitError(
                f"{name!r} is a tag ({found[0]}), not a branch",
                where=where,
                hint=f"pass a branch (e.g. refs/remotes/origin/main), or {found[0]} "
                "if the tag is really meant",
            )
        if not found:
            raise GitError(
                f"unknown revision {name!r}",
                where=where,
                hint="fetch it first (`git fetch origin main`) or name an existing "
                "branch, tag or commit",
            )
        return found[0]

    def is_shallow(self) -> bool:
        """True in a shallow clone (history cut off: `--depth`, CI's default checkout)."""
        return self._run("rev-parse", "--is-shallow-repository").strip() == b"true"

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        """True when `ancestor` is `commit` or reachable from it."""
        proc = subprocess.run(
            ["git", "merge-base", "--is-ancestor", ancestor, commit],
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        if proc.returncode not in (0, 1):
            raise GitError(
                f"git merge-base failed: {proc.stderr.decode('utf-8', 'replace').strip()}",
                where=str(self.root),
            )
        return proc.returncode == 0

    def first_parent_since(self, root: str, tip: str) -> list[tuple[str, str | None]]:
        """`(commit, first parent)` along the first-parent history from `tip` down to,
        not including, `root`, newest first. When `root` is on that history the last
        pair's parent is `root`."""
        out = self._run("rev-list", "--first-parent", "--parents", f"{root}..{tip}")
        pairs: list[tuple[str, str | None]] = []
        for line in out.decode("ascii").splitlines():
            ids = line.split()
            pairs.append((ids[0], ids[1] if len(ids) > 1 else None))
        return pairs

    def first_parents(self, tip: str) -> list[str]:
        """`tip` and its first-parent ancestors, newest first."""
        return self._run("rev-list", "--first-parent", tip).decode("ascii").split()

    def path_history(
        self, tip: str, prefix: str, *, since: str | None = None
    ) -> list[HistoryCommit]:
        """Every commit of `tip`'s first-parent history (after `since`) that changed
        something under `prefix`, oldest first, with what it changed against its first
        parent. One `git log`: git skips unchanged subtrees by their ids, so 10,000
        commits cost tens of milliseconds."""
        rng = f"{since}..{tip}" if since else tip
        out = self._run(
            "log",
            "--first-parent",
            "--diff-merges=first-parent",
            "--reverse",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "-z",
            "--format=%x01%H %ct",
            rng,
            "--",
            prefix,
        )
        commits: list[HistoryCommit] = []
        for chunk in out.split(b"\x01")[1:]:
            fields = chunk.split(b"\0")
            sha, _, stamp = fields[0].decode("ascii").strip().partition(" ")
            changes: list[TreeChange] = []
            for meta, raw_path in zip(fields[1::2], fields[2::2], strict=False):
                meta = meta.strip()
                if not meta.startswith(b":"):
                    continue
                _, new_mode, _, new_id, status = meta[1:].split(b" ")
                deleted = status == b"D"
                changes.append(
                    TreeChange(
                        path=os.fsdecode(raw_path),
                        blob=None if deleted else new_id.decode("ascii"),
                        mode=int(new_mode, 8),
                    )
                )
            commits.append(HistoryCommit(hexsha=sha, time=int(stamp), changes=tuple(changes)))
        return commits

    def tree_files(self, rev: str, prefix: str) -> dict[str, TreeChange]:
        """The blobs under `prefix` at `rev` (one `git ls-tree`)."""
        out = self._run("ls-tree", "-r", "-z", "--full-tree", rev, "--", prefix)
        files: dict[str, TreeChange] = {}
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, oid = meta.split(b" ")
            if kind == b"blob":
                path = os.fsdecode(raw_path)
                files[path] = TreeChange(path=path, blob=oid.decode("ascii"), mode=int(mode, 8))
        return files

    def commit_time(self, rev: str) -> int:
        """The committer time of `rev`, seconds since the epoch."""
        return int(self._run("show", "-s", "--format=%ct", rev, "--").strip() or 0)

    def latest_change(self, tip: str, paths: Sequence[str]) -> str | None:
        """The newest commit of `tip`'s first-parent history that changed one of `paths`."""
        out = self._run("log", "--first-parent", "-n1", "--format=%H", tip, "--", *paths)
        return out.decode("ascii").strip() or None

    def changed_paths(self, parent: str | None, commit: str) -> list[str]:
        """Paths that differ between `parent` (None: a first commit) and `commit`."""
        return self._changed_paths(parent, commit)

    def commits_to_push(self, tip: str, exclude: Sequence[str]) -> list[tuple[str, str | None]]:
        """`(commit, first parent)` for every commit reachable from `tip` but from none of
        `exclude` (commit ids or `--remotes=NAME`-style options), oldest first."""
        out = self._run(
            "rev-list", "--reverse", "--topo-order", "--parents", tip, "--not", *exclude
        )
        pairs: list[tuple[str, str | None]] = []
        for line in out.decode("ascii").splitlines():
            ids = line.split()
            pairs.append((ids[0], ids[1] if len(ids) > 1 else None))
        return pairs

    def object_exists(self, oid: str) -> bool:
        proc = subprocess.run(
            ["git", "cat-file", "-e", f"{oid}^{{commit}}"],
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0

    def read_at(self, rev: str, path: str) -> bytes | None:
        """The blob at `rev:path`, or None when the commit has no such file."""
        found = self._objects.read(f"{rev}:{path}")
        return found[2] if found is not None and found[1] == "blob" else None

    def blob_id_at(self, rev: str, path: str) -> str | None:
        """The object id of `rev:path` without reading the object."""
        found = self._objects.read(f"{rev}:{path}", contents=False)
        return found[0] if found is not None else None

    @cached_property
    def _config(self) -> dict[str, str]:
        """Every config value git sees here, by lower-cased `section.key` (last wins)."""
        out = self._run("config", "--null", "--list", ok=(0, 1))
        values: dict[str, str] = {}
        for record in out.split(b"\0"):
            key, _, value = record.partition(b"\n")
            if key:
                values[key.decode("utf-8", "replace").lower()] = value.decode("utf-8", "replace")
        return values

    def config(self, section: str, option: str, default: str | None = None) -> str | None:
        return self._config.get(f"{section}.{option}".lower(), default)

    def worktree_gitlinks(self, paths: Sequence[str]) -> dict[str, str]:
        """The commit each of `paths` is at, for those the index records as a submodule:
        the submodule's checked-out HEAD, or the commit the index records when it is not
        checked out (a CI checkout without `submodules: true`)."""
        out: dict[str, str] = {}
        for path, entry in self.index_entries(paths).items():
            if entry.mode != GIT_SUBMODULE:
                continue
            out[path] = self._submodule_head(path) or entry.hexsha
        return out

    def _submodule_head(self, path: str) -> str | None:
        folder = self.root / path
        # Without its own `.git`, git would answer for the superproject instead.
        if not (folder / ".git").exists():
            return None
        try:
            proc = subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
                cwd=folder,
                capture_output=True,
                check=False,
                env=_submodule_env(self.root),
            )
        except OSError:
            return None
        head = proc.stdout.decode("ascii", "replace").strip()
        return head if proc.returncode == 0 and head else None

    def eol_converted(self, paths: Iterable[str]) -> frozenset[str]:
        """The paths among `paths` whose working-tree file git stores with CRLF turned
        into LF, decided per path exactly as `git add` decides it.

        Hashes of those files then cover the content as git stores it, so a CRLF
        checkout of a tree signed on Linux verifies clean, while a path git stores byte
        for byte (no rule applies, `-text`, `core.autocrlf=false`) is hashed byte for byte
        and a CR injected into it is caught. git itself answers: `git check-attr` reads
        the `.gitattributes` files of every folder, `info/attributes`,
        `core.attributesFile` and the system file; `core.autocrlf` comes from `git
        config`. (`core.eol` only chooses the checkout form, never what is stored.)

        One rule is stricter than git's: a path whose staged blob already holds a CR is
        never normalised. git skips normalising such a file only for `text=auto` (its
        "safer autocrlf"); applied to every path it means a CR that is committed content
        is hashed as content, so it can never hide behind a `text` attribute in a
        checkout where the working-tree file equals the committed blob.
        """
        paths = list(paths)
        wanted = [p for p in dict.fromkeys(paths) if p not in self._eol_cache]
        if wanted:
            converting = self._eol_by_attributes(wanted)
            if converting:
                converting -= self._cr_in_index(sorted(converting))
            for p in wanted:
                self._eol_cache[p] = p in converting
        return frozenset(p for p in paths if self._eol_cache.get(p))

    def _autocrlf(self) -> str:
        """`core.autocrlf` as git reads it (every config level, `-c`): true, input or false."""
        if self._autocrlf_value is None:
            value = self._run("config", "--default", "false", "--get", "core.autocrlf")
            text = value.decode("utf-8", "replace").strip().lower()
            if text == "input":
                self._autocrlf_value = "input"
            elif text in ("true", "yes", "on") or (text.isdigit() and int(text) != 0):
                self._autocrlf_value = "true"
            else:
                self._autocrlf_value = "false"
        return self._autocrlf_value

    def _eol_by_attributes(self, paths: list[str]) -> set[str]:
        """The paths whose attributes and `core.autocrlf` make `git add` normalise line
        ends (git's convert.c: `convert_attrs`), one `git check-attr` for all of them
        (macros such as `binary` expanded by git)."""
        autocrlf = self._autocrlf()
        data = b"".join(os.fsencode(p) + b"\0" for p in paths)
        try:
            proc = subprocess.run(
                # `--all` prints only what is set, unset or given a value: nothing at
                # all on the usual tree without rules, so the usual case costs no parsing.
                ["git", "check-attr", "--stdin", "-z", "--all"],
                cwd=self.root,
                input=data,
                capture_output=True,
                check=False,
            )
        except OSError as exc:
            raise GitError(f"git check-attr failed: {exc}", where=str(self.root)) from None
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise GitError(f"git check-attr failed: {err}", where=str(self.root))
        # `<path> NUL <attribute> NUL <value> NUL`, the attributes of a path together.
        attrs: dict[bytes, dict[str, str]] = {}
        fields = iter(proc.stdout.split(b"\0"))
        for path, name, value in zip(fields, fields, fields, strict=False):
            if name in (b"text", b"eol", b"crlf") and value != b"unspecified":
                attrs.setdefault(path, {})[name.decode("ascii")] = value.decode("utf-8", "replace")
        if autocrlf == "false" and not attrs:
            return set()  # the usual case: no rule anywhere, nothing converted
        return {
            p
            for p in paths
            if eol_action(attrs.get(os.fsencode(p), {}), autocrlf) is not EolAction.NONE
        }

    def _cr_in_index(self, paths: list[str]) -> set[str]:
        """The paths whose staged blob may hold a CR, from git's own statistics of the
        blob (`git ls-files --eol`: `i/lf` and `i/none` hold no CR; `i/crlf`, `i/mixed`
        and `i/-text`, binary or with a lone CR, may). One listing of the whole index:
        git matches thousands of pathspecs against every entry, which costs far more."""
        wanted = set(paths)
        out: set[str] = set()
        for record in self._run("ls-files", "--eol", "-z").split(b"\0"):
            meta, tab, name = record.partition(b"\t")
            if tab and not meta.startswith((b"i/lf ", b"i/none ")):
                path = os.fsdecode(name)
                if path in wanted:
                    out.add(path)
        return out

    @property
    def filemode(self) -> bool:
        return (self.config("core", "filemode", "true") or "true").lower() != "false"

    def user(self) -> str:
        name = self.config("user", "name") or os.environ.get("USER", "unknown")
        email = self.config("user", "email")
        return f"{name} <{email}>" if email else name


class EolAction(enum.Enum):
    """What `git add` does to a file's line ends (git's `crlf_action`, for check-in)."""

    NONE = "none"  # stored byte for byte
    TEXT = "text"  # every CRLF becomes LF
    AUTO = "auto"  # CRLF becomes LF unless the file looks binary or is staged with CRLF


def _attr_action(value: str | None) -> EolAction | None:
    """git's `git_path_check_crlf` for the value of a `text` or `crlf` attribute."""
    if value == "set" or value == "input":
        return EolAction.TEXT
    if value == "unset":
        return EolAction.NONE
    if value == "auto":
        return EolAction.AUTO
    return None  # unspecified, or a value git does not know


def eol_action(attrs: Mapping[str, str], autocrlf: str) -> EolAction:
    """git's `convert_attrs`, for check-in: the `text` attribute (else the old `crlf`),
    an `eol` attribute that makes an unspecified one `text`, else `core.autocrlf`."""
    action = _attr_action(attrs.get("text"))
    if action is None:
        action = _attr_action(attrs.get("crlf"))
    if action is not EolAction.NONE and attrs.get("eol") in ("lf", "crlf"):
        action = EolAction.AUTO if action is EolAction.AUTO else EolAction.TEXT
    if action is None:
        action = EolAction.NONE if autocrlf == "false" else EolAction.AUTO
    return action


@dataclass(frozen=True, kw_only=True, slots=True)
class IndexEntry:
    mode: int
    hexsha: str
    stage: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class TreeChange:
    """One path a commit changed (or holds): its new blob id, None when deleted."""

    path: str
    blob: str | None
    mode: int = GIT_FILE


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryCommit:
    """A commit of a path-limited first-parent history: what it changed, and when."""

    hexsha: str
    time: int  # committer time, seconds since the epoch (as the committer claims)
    changes: tuple[TreeChange, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class CommitInfo:
    hexsha: str
    author: str
    when: str
    message: str
    changed: tuple[str, ...]


# What `git rev-parse --local-env-vars` lists: set by a hook for the superproject, each
# would make git in a submodule answer for the superproject instead.
_LOCAL_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_GRAFT_FILE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_NAMESPACE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_PREFIX",
    "GIT_REPLACE_REF_BASE",
    "GIT_SHALLOW_FILE",
    "GIT_INTERNAL_SUPER_PREFIX",
)


def _submodule_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LOCAL_ENV}
    env["GIT_CEILING_DIRECTORIES"] = str(root)
    return env


def iter_ls_files(raw: bytes) -> Iterable[tuple[str, IndexEntry]]:
    """Parse `git ls-files --stage -z`: `<mode> <sha> <stage>\t<path>\0`."""
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, sha, stage = meta.split(b" ")
        yield (
            os.fsdecode(path),
            IndexEntry(mode=int(mode, 8), hexsha=sha.decode("ascii"), stage=int(stage)),
        )


class _CatFile:
    """One `git cat-file --batch-command` process (git 2.36+), started on the first
    request, for every object a run asks about: policy, trust and manifests at HEAD,
    staged blobs, HEAD itself, and object ids without their bytes. With an older git,
    one `--batch` process for objects and one `--batch-check` for ids."""

    def __init__(self, root: Path):
        self._root = root
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._legacy = False

    def read(self, spec: str, *, contents: bool = True) -> tuple[str, str, bytes] | None:
        """(id, type, bytes) of the object `spec` names (an id, `rev:path`, `HEAD`), or
        None when there is none; the bytes are empty unless `contents`."""
        found = self._request(spec, contents=contents)
        if found is None:
            return None
        oid, kind, size, stream = found
        if stream is None:
            return oid, kind, b""
        return oid, kind, _read_exactly(stream, size + 1)[:size]  # the object, then LF

    def digest(self, spec: str) -> tuple[str, int] | None:
        """SHA-256 and size of the object `spec` names, streamed into the hasher in
        chunks: memory stays flat whatever the object's size."""
        found = self._request(spec, contents=True)
        if found is None:
            return None
        _, _, size, stream = found
        assert stream is not None
        h = hashlib.sha256()
        left = size
        # Read to the end of the object, or the shared process is left mid-object.
        while left > 0:
            chunk = _read_exactly(stream, min(left, BLOB_CHUNK))
            h.update(chunk)
            left -= len(chunk)
        _read_exactly(stream, 1)  # the LF after the object
        return h.hexdigest(), size

    def _request(
        self, spec: str, *, contents: bool
    ) -> tuple[str, str, int, IO[bytes] | None] | None:
        """Ask for `spec`: (id, type, size, the stream its bytes come next on, when
        `contents`), or None when there is no such object."""
        if "\n" in spec:  # one request per line: such a path cannot be asked this way
            return None
        name = os.fsencode(spec)
        if not self._legacy:
            header = self._ask("--batch-command", (b"contents " if contents else b"info ") + name)
            if header is None:  # git older than 2.36: it did not start
                self._legacy = True
        if self._legacy:
            mode = "--batch" if contents else "--batch-check"
            header = self._ask(mode, name)
            if header is None:
                raise GitError("git cat-file stopped", where=str(self._root))
        assert header is not None
        fields = header.split()
        if not fields or fields[-1] in (b"missing", b"ambiguous") or len(fields) != 3:
            return None  # "<spec> missing": the spec itself may hold spaces
        oid, kind, size = fields[0].decode("ascii"), fields[1].decode("ascii"), int(fields[2])
        if not contents:
            return oid, kind, size, None
        proc = self._procs["--batch" if self._legacy else "--batch-command"]
        assert proc.stdout is not None
        return oid, kind, size, proc.stdout

    def _ask(self, mode: str, request: bytes) -> bytes | None:
        """Send one request line; its header line back, or None when git is gone."""
        proc = self._procs.get(mode)
        if proc is None:
            try:
                proc = subprocess.Popen(
                    ["git", "cat-file", mode],
                    cwd=self._root,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            except OSError as exc:
                raise GitError(f"cannot run git: {exc}", where=str(self._root)) from None
            self._procs[mode] = proc
            weakref.finalize(self, _stop, proc)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(request + b"\n")
            proc.stdin.flush()
        except BrokenPipeError:
            return None
        return proc.stdout.readline() or None


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    parts: list[bytes] = []
    while size > 0:
        part = stream.read(size)
        if not part:
            raise GitError("git cat-file stopped before the end of an object")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a `cat-file` process: closing its input ends it, unless a forked scan worker
    still holds a copy of that pipe (this runs when the repository object is collected,
    which can be while a pool is alive); then it is killed, which costs a reader
    nothing, instead of waiting for an end of input that never comes."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=_STOP_WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


_STOP_WAIT = 1.0  # seconds: git ends at once when its input closes


def open_repo(root: Path) -> GitRepo | None:
    """The repository at `root`, or None when `root` is not a git work tree."""
    if not (root / ".git").exists():
        return None
    return GitRepo(root)
