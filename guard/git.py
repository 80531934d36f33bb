"""Everything that touches git, through gitpython: files at a commit, the index, config.

Trust is read from commits (HEAD or `--trust-ref`), never from the change under test,
so this module is where "where trust comes from" is implemented.
"""

from __future__ import annotations

import enum
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError
from qeguard.errors import GitError

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
        try:
            self.repo = git.Repo(root, search_parent_directories=False)
        except (InvalidGitRepositoryError, NoSuchPathError):
            raise GitError(
                "not a git repository",
                where=str(root),
                hint="run `git init`, or pass -C with the repository root",
            ) from None
        if self.repo.working_tree_dir is None:
            raise GitError("a bare repository has no working tree", where=str(root))
        self.root = Path(self.repo.working_tree_dir)
        self._eol_cache: dict[str, bool] = {}
        self._autocrlf_value: str | None = None

    def _run(self, *args: str) -> bytes:
        # Literal pathspecs: a protected file named `*.py` or `:(top)x` means itself.
        env = {"GIT_LITERAL_PATHSPECS": "1"}
        try:
            out: bytes = self.repo.git.execute(["git", *args], stdout_as_string=False, env=env)
        except GitCommandError as exc:
            err = exc.stderr.strip() if isinstance(exc.stderr, str) else str(exc)
            raise GitError(f"git {args[0]} failed: {err}", where=str(self.root)) from None
        return out

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
        """An object's bytes through gitpython's object database (one `cat-file` process)."""
        data: bytes = self.repo.odb.stream(bytes.fromhex(hexsha)).read()
        return data

    def blob_digest(self, hexsha: str) -> tuple[str, int]:
        """SHA-256 and size of a blob, streamed from the one `git cat-file --batch`
        process into the hasher in chunks: memory stays flat whatever the blob's size
        (a hook reading a 512 MiB file whole would hold all of it)."""
        stream = self.repo.odb.stream(bytes.fromhex(hexsha))
        h = hashlib.sha256()
        size = 0
        # The stream must be read to its end, or the shared process is left mid-object.
        while chunk := stream.read(BLOB_CHUNK):
            h.update(chunk)
            size += len(chunk)
        return h.hexdigest(), size

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

    def start_list_paths(self) -> Callable[[], list[str]]:
        """Start `list_paths` now; the returned function waits for it. On a large tree git
        walks every folder for untracked files, so the caller works meanwhile."""
        # Files, not pipes: git would stall on a full pipe until the caller reads it.
        # `collect` closes them.
        out = tempfile.TemporaryFile()  # noqa: SIM115
        err = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                ["git", *_LS_FILES], cwd=self.root, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        except OSError:
            out.close()
            err.close()
            return self.list_paths

        def collect() -> list[str]:
            with out, err:
                if proc.wait() != 0:
                    err.seek(0)
                    raise GitError(
                        f"git ls-files failed: {err.read().decode('utf-8', 'replace').strip()}",
                        where=str(self.root),
                    )
                out.seek(0)
                return _split_paths(out.read())

        return collect

    def is_ignored(self, rel: str) -> bool:
        """Whether git ignores `rel` (POSIX, from the root; it need not exist). A tracked
        file is never ignored: the next `git commit -a` takes it."""
        # Not `_run`: check-ignore takes path names, and refuses the literal-pathspec
        # setting `_run` uses.
        try:
            self.repo.git.execute(["git", "check-ignore", "-q", "--", rel])
        except GitCommandError as exc:
            if exc.status == 1:  # not ignored
                return False
            raise GitError(f"git check-ignore failed: {exc.stderr}", where=str(self.root)) from None
        return True

    def head(self) -> str | None:
        try:
            return self.repo.head.commit.hexsha
        except ValueError:  # unborn branch: no commit yet
            return None

    def resolve(self, rev: str) -> str:
        try:
            return self.repo.commit(rev).hexsha
        except (BadName, ValueError, GitCommandError):
            raise GitError(
                f"unknown revision {rev!r}",
                where="--trust-ref",
                hint="fetch it first (`git fetch origin main`) or name an existing "
                "branch, tag or commit",
            ) from None

    def read_at(self, rev: str, path: str) -> bytes | None:
        """The blob at `rev:path`, or None when the commit has no such file."""
        commit = self.repo.commit(rev)
        try:
            blob = commit.tree / path
        except KeyError:
            return None
        if blob.type != "blob":
            return None
        data: bytes = blob.data_stream.read()
        return data

    def blob_id_at(self, rev: str, path: str) -> str | None:
        """The object id of `rev:path` without reading the object."""
        try:
            item = self.repo.commit(rev).tree / path
        except KeyError:
            return None
        return str(item.hexsha)

    def config(self, section: str, option: str, default: str | None = None) -> str | None:
        reader = self.repo.config_reader()
        try:
            value = reader.get_value(section, option)
        except Exception:  # gitpython raises configparser's NoOptionError/NoSectionError
            return default
        return str(value)

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


def open_repo(root: Path) -> GitRepo | None:
    """The repository at `root`, or None when `root` is not a git work tree."""
    if not (root / ".git").exists():
        return None
    return GitRepo(root)
