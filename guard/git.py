"""Everything that touches git: files at a commit, the index, config.

Trust is read from commits (HEAD or `--trust-ref`), never from the change under test,
so this module is where "where trust comes from" is implemented.

What the hooks and `verify` need runs git directly (one `cat-file --batch` process
serves every object read); gitpython, which costs a pre-commit hook about 50 ms just to
import, is loaded only by what walks history or commits (`commits_between`, `resolve`,
`CommitTree`, restore, status).
"""

from __future__ import annotations

import os
import subprocess
import weakref
from collections.abc import Callable, Iterable, Sequence
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
        self.root = Path(os.path.abspath(root))
        self._objects = _CatFile(self.root)

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

    def commits_between(self, base: str, tip: str) -> list[CommitInfo]:
        """Commits reachable from `tip` but not from `base`, oldest first."""
        import git

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

    def head(self) -> str | None:
        """HEAD's commit, or None on an unborn branch (no commit yet)."""
        found = self._objects.read("HEAD^{commit}", contents=False)
        return found[0] if found is not None else None

    def resolve(self, rev: str) -> str:
        from git.exc import BadName, GitCommandError

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
        oid, kind = fields[0].decode("ascii"), fields[1].decode("ascii")
        if not contents:
            return oid, kind, b""
        size = int(fields[2])
        proc = self._procs["--batch" if self._legacy else "--batch-command"]
        assert proc.stdout is not None
        return oid, kind, _read_exactly(proc.stdout, size + 1)[:size]  # the object, then LF

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
    if proc.stdin is not None:
        proc.stdin.close()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def open_repo(root: Path) -> GitRepo | None:
    """The repository at `root`, or None when `root` is not a git work tree."""
    if not (root / ".git").exists():
        return None
    return GitRepo(root)
