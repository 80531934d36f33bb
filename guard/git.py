"""Everything that touches git, through gitpython: files at a commit, the index, config.

Trust is read from commits (HEAD or `--trust-ref`), never from the change under test,
so this module is where "where trust comes from" is implemented.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError
from qeguard.errors import GitError

GIT_FILE = 0o100644
GIT_EXEC = 0o100755
GIT_LINK = 0o120000
GIT_SUBMODULE = 0o160000
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

    def commits_between(self, base: str, tip: str) -> list[CommitInfo]:
        """Commits reachable from `tip` but not from `base`, oldest first."""
        out: list[CommitInfo] = []
        for c in reversed(list(self.repo.iter_commits(f"{base}..{tip}"))):
            author = f"{c.author.name} <{c.author.email}>" if c.author.email else c.author.name
            parent = c.parents[0] if c.parents else None
            diffs = parent.diff(c) if parent is not None else c.diff(git.NULL_TREE)
            changed = sorted({p for d in diffs for p in (d.a_path, d.b_path) if p})
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

    @property
    def normalize_eol(self) -> bool:
        """True when git converts line ends on add (autocrlf or .gitattributes text/eol).

        Hashes then cover the content as git stores it, so a CRLF checkout of a tree
        signed on Linux verifies clean.
        """
        if (self.config("core", "autocrlf", "false") or "false").lower() in ("true", "input"):
            return True
        attrs = self.root / ".gitattributes"
        if attrs.is_file():
            text = attrs.read_text(encoding="utf-8", errors="replace")
            return any(w in text for w in ("text", "eol="))
        return False

    @property
    def filemode(self) -> bool:
        return (self.config("core", "filemode", "true") or "true").lower() != "false"

    def user(self) -> str:
        name = self.config("user", "name") or os.environ.get("USER", "unknown")
        email = self.config("user", "email")
        return f"{name} <{email}>" if email else name


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
