"""Everything that touches git, through gitpython: files at a commit, the index, config.

Trust is read from commits (HEAD or `--trust-ref`), never from the change under test,
so this module is where "where trust comes from" is implemented.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from guard.errors import GitError
from guard.manifest import MODE_EXEC, MODE_FILE, MODE_LINK
from guard.scan import Observed, Seen, hash_bytes

_GIT_FILE = 0o100644
_GIT_EXEC = 0o100755
_GIT_LINK = 0o120000


class GitRepo:
    """A git work tree."""

    def __init__(self, root: Path):
        try:
            self.repo = git.Repo(root, search_parent_directories=False)
        except (InvalidGitRepositoryError, NoSuchPathError):
            raise GitError("not a git repository", where=str(root),
                           hint="run `git init`, or pass -C with the repository root") from None
        if self.repo.working_tree_dir is None:
            raise GitError("a bare repository has no working tree", where=str(root))
        self.root = Path(self.repo.working_tree_dir)

    def _run(self, *args: str) -> bytes:
        out: bytes = self.repo.git.execute(["git", *args], stdout_as_string=False)
        return out

    def list_paths(self) -> list[str]:
        """Tracked and untracked files that git does not ignore (deleted tracked ones too)."""
        out = self._run("ls-files", "-z", "--cached", "--others", "--exclude-standard")
        seen: dict[str, None] = {}
        for raw in out.split(b"\0"):
            if raw:
                seen[os.fsdecode(raw)] = None
        return list(seen)

    def head(self) -> str | None:
        try:
            return self.repo.head.commit.hexsha
        except ValueError:  # unborn branch: no commit yet
            return None

    def resolve(self, rev: str) -> str:
        try:
            return self.repo.commit(rev).hexsha
        except (BadName, ValueError, GitCommandError):
            raise GitError(f"unknown revision {rev!r}", where="--trust-ref",
                           hint="fetch it first (`git fetch origin main`) or name an existing "
                                "branch, tag or commit") from None

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


def open_repo(root: Path) -> GitRepo | None:
    """The repository at `root`, or None when `root` is not a git work tree."""
    if not (root / ".git").exists():
        return None
    return GitRepo(root)


class CommitTree:
    """The files of one commit, as a `Tree` for verification."""

    exec_bit_meaningful = True

    def __init__(self, repo: GitRepo, rev: str):
        self.repo = repo
        self.rev = repo.resolve(rev)
        self.label = f"commit {self.rev[:12]}"
        self._commit = repo.repo.commit(self.rev)

    def candidates(self) -> list[str]:
        return [str(item.path) for item in self._commit.tree.traverse()  # type: ignore[union-attr]
                if item.type == "blob"]  # type: ignore[union-attr]

    def read(self, path: str) -> bytes | None:
        return self.repo.read_at(self.rev, path)

    def observe(self, paths: Sequence[str]) -> dict[str, Observed]:
        out: dict[str, Observed] = {}
        for path in paths:
            try:
                item = self._commit.tree / path
            except KeyError:
                out[path] = Observed(seen=Seen.MISSING)
                continue
            out[path] = observe_blob(item.type, item.mode, item.data_stream.read()
                                     if item.type == "blob" else b"")
        return out


def observe_blob(kind: str, mode: int, data: bytes) -> Observed:
    """An object from git's database, observed the way the working tree would be."""
    if kind == "tree":
        return Observed(seen=Seen.DIRECTORY)
    if kind != "blob":
        return Observed(seen=Seen.OTHER, error=f"git object of type {kind}")
    if mode == _GIT_LINK:
        return Observed(seen=Seen.SYMLINK, sha256=hashlib.sha256(data).hexdigest(),
                        mode=MODE_LINK, target=os.fsdecode(data))
    # Blobs are already in git's clean form: no line-end conversion.
    return Observed(seen=Seen.FILE, sha256=hash_bytes(data, normalize_eol=False),
                    mode=MODE_EXEC if mode == _GIT_EXEC else MODE_FILE)
