"""guard.gitio: the staged index as a Tree, staged paths, commits and trailers; and that
`verify --staged` looks only at what is staged."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from helpers import (
    CORE_FILE,
    MIDDLE_FILE,
    KeyPair,
    git_run,
    protect,
    rules,
    run_qeguard,
    sign,
    verify_json,
    write_files,
)
from qeguard.errors import GitError
from qeguard.git import GitRepo
from qeguard.integrity.gate import run_verify
from qeguard.integrity.manifest import MODE_EXEC, MODE_FILE, MODE_LINK
from qeguard.integrity.trees.base import Observed, Seen, hash_bytes
from qeguard.integrity.trees.index import IndexTree


def _staged_repo(repo: Path) -> GitRepo:
    write_files(repo, {"a.txt": "committed\n", "b/c.sh": "#!/bin/sh\n", "gone.txt": "x\n"})
    os.chmod(repo / "b/c.sh", 0o755)
    git_run(repo, "add", "-A")
    git_run(repo, "commit", "-q", "-m", "base")
    write_files(repo, {"a.txt": "staged\n", "new.txt": "new\n"})
    git_run(repo, "add", "a.txt", "new.txt")
    git_run(repo, "rm", "-q", "gone.txt")
    (repo / "a.txt").write_text("working tree only\n")
    os.symlink("a.txt", repo / "link")
    git_run(repo, "add", "link")
    return GitRepo(repo)


def test_index_tree_reads_staged_blobs_not_the_working_tree(repo: Path) -> None:
    tree = IndexTree(_staged_repo(repo))
    assert tree.read("a.txt") == b"staged\n"
    assert tree.read("gone.txt") is None
    assert tree.read("link") is None  # a symlink is not a small file to read
    seen = tree.observe(["a.txt", "b/c.sh", "gone.txt", "link", "nope"])
    assert seen["a.txt"].sha256 == hash_bytes(b"staged\n", normalize_eol=False)
    assert seen["a.txt"].mode == MODE_FILE
    assert seen["b/c.sh"].mode == MODE_EXEC
    assert seen["gone.txt"].seen is Seen.MISSING
    assert seen["nope"].seen is Seen.MISSING
    assert seen["link"].seen is Seen.SYMLINK and seen["link"].mode == MODE_LINK
    assert seen["link"].target == "a.txt"
    assert sorted(tree.candidates()) == ["a.txt", "b/c.sh", "link", "new.txt"]


def test_index_tree_paths_are_literal(repo: Path) -> None:
    write_files(repo, {"*.py": "star\n", "x.py": "x\n", ":(top)odd": "odd\n"})
    git_run(repo, "add", "-A")
    tree = IndexTree(GitRepo(repo))
    assert tree.read("*.py") == b"star\n"
    assert tree.read(":(top)odd") == b"odd\n"
    assert set(tree.observe(["*.py"])) == {"*.py"}


def test_staged_paths_compare_the_index_with_head(repo: Path) -> None:
    g = _staged_repo(repo)
    assert sorted(g.staged_paths()) == ["a.txt", "gone.txt", "link", "new.txt"]


def test_staged_paths_before_the_first_commit(repo: Path) -> None:
    write_files(repo, {"x": "1\n"})
    git_run(repo, "add", "x")
    assert GitRepo(repo).staged_paths() == ["x"]


def test_unmerged_entries_are_not_files(repo: Path) -> None:
    write_files(repo, {"f": "base\n"})
    git_run(repo, "add", "f")
    git_run(repo, "commit", "-q", "-m", "base")
    git_run(repo, "checkout", "-q", "-b", "other")
    write_files(repo, {"f": "other\n"})
    git_run(repo, "commit", "-q", "-am", "other")
    git_run(repo, "checkout", "-q", "main")
    write_files(repo, {"f": "main\n"})
    git_run(repo, "commit", "-q", "-am", "main")
    git_run(repo, "merge", "-q", "other", check=False)
    seen = IndexTree(GitRepo(repo)).observe(["f"])["f"]
    assert seen.seen is Seen.OTHER and "unmerged" in (seen.error or "")


def test_commits_between_with_changed_paths(repo: Path) -> None:
    write_files(repo, {"a": "1\n"})
    git_run(repo, "add", "a")
    git_run(repo, "commit", "-q", "-m", "one")
    base = git_run(repo, "rev-parse", "HEAD").strip()
    write_files(repo, {"b": "2\n"})
    git_run(repo, "add", "b")
    git_run(repo, "commit", "-q", "-m", "two\n\nQeguard-Override: why")
    g = GitRepo(repo)
    commits = g.commits_between(base, "HEAD")
    assert len(commits) == 1
    assert commits[0].changed == ("b",)
    assert commits[0].author == "Test User <test@example.com>"
    assert "Qeguard-Override: why" in commits[0].message


def test_unknown_revision_is_a_git_error(repo: Path) -> None:
    write_files(repo, {"a": "1\n"})
    git_run(repo, "add", "a")
    git_run(repo, "commit", "-q", "-m", "one")
    with pytest.raises(GitError) as err:
        GitRepo(repo).resolve("origin/nowhere")
    assert "fetch" in (err.value.hint or "")
    r = run_qeguard("verify", "--trust-ref", "origin/nowhere", cwd=repo)
    assert r.code == 2 and "unknown revision" in r.err


class RecordingIndexTree(IndexTree):
    """An IndexTree that remembers which paths verification asked it to observe."""

    def __init__(self, repo: GitRepo):
        super().__init__(repo)
        self.asked: set[str] = set()

    def observe(self, paths: Sequence[str]) -> dict[str, Observed]:
        self.asked.update(paths)
        return super().observe(paths)


def test_staged_verify_observes_only_what_is_staged(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    many: dict[str, str | bytes] = {f"src/pkg/mod{i:03d}.py": f"N = {i}\n" for i in range(200)}
    write_files(repo, many)
    protect(repo, alice, bob)
    write_files(repo, {MIDDLE_FILE: "HELPER = 2\n", "src/pkg/mod007.py": "N = -7\n"})
    git_run(repo, "add", MIDDLE_FILE)  # mod007 changed on disk only: not the hook's business
    tree = RecordingIndexTree(GitRepo(repo))
    result = run_verify(repo, tree=tree, staged=True)
    assert tree.asked == {MIDDLE_FILE}
    assert [f.rule for f in result.findings] == ["QG-INT-MODIFIED"]

    # A staged manifest change widens the check to exactly the entries it changed.
    sign(repo, alice, "middle")  # re-signs middle including mod007's new content
    git_run(repo, "add", ".qeguard")
    tree = RecordingIndexTree(GitRepo(repo))
    result = run_verify(repo, tree=tree, staged=True)
    assert tree.asked == {MIDDLE_FILE, "src/pkg/mod007.py"}
    assert [f"{f.rule} {f.location.path if f.location else ''}" for f in result.findings] == [
        "QG-INT-MODIFIED src/pkg/mod007.py"
    ]


def test_staged_verify_with_a_changed_policy_checks_the_whole_index(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    policy = repo / ".qeguard/policy.toml"
    policy.write_text(policy.read_text() + "\nexpires_days = 90\n")
    git_run(repo, "add", ".qeguard/policy.toml")
    tree = RecordingIndexTree(GitRepo(repo))
    run_verify(repo, tree=tree, staged=True)
    assert CORE_FILE in tree.asked and "src/pkg/core/train.py" in tree.asked


def test_staged_hook_messages(
    repo: Path, keypair: Callable[..., KeyPair], chdir: Callable[[Path], None]
) -> None:
    """Blocked: says what to run. One of two signers: passes with a warning naming them.
    No trusted signature at all: blocks."""
    chdir(repo)  # as git runs the hook: from the root, so the hint needs no `-C`
    alice, bob = keypair("alice"), keypair("bob")
    protect(repo, alice, bob)
    write_files(repo, {CORE_FILE: "def predict(x):\n    return 0\n"})
    git_run(repo, "add", CORE_FILE)
    r = run_qeguard("verify", "--staged", cwd=repo)
    assert r.code == 1
    assert "qeguard sign --tier core --key KEY && git add .qeguard" in r.out
    assert "trust from: trust root " in r.out

    sign(repo, alice, "core")
    git_run(repo, "add", ".qeguard")
    assert verify_json(repo, "--staged")[0] == 1  # strict outside the hook
    code, doc = verify_json(repo, "--hook", "pre-commit")
    assert code == 0
    warn = next(f for f in doc["findings"] if f["rule"] == "QG-SIG-THRESHOLD")
    assert warn["severity"] == "low" and warn["details"]["signers"] == ["alice"]

    # `qeguard sign` with an untrusted key writes nothing; an attacker can still write a
    # manifest that covers the change and that nobody trusted signed.
    (repo / CORE_FILE).write_text("def predict(x):\n    return 1\n")
    _write_unsigned_manifest(repo, "core")
    git_run(repo, "add", ".qeguard", CORE_FILE)
    code, doc = verify_json(repo, "--hook", "pre-commit")
    assert code == 1
    bad = next(f for f in doc["findings"] if f["rule"] == "QG-SIG-THRESHOLD")
    assert bad["severity"] == "high" and bad["details"]["signers"] == []
    assert "QG-INT-MODIFIED" not in " ".join(rules(doc))  # covered, but by nobody trusted


def _write_unsigned_manifest(root: Path, tier: str) -> None:
    from datetime import UTC, datetime

    from qeguard.integrity.config import parse_config
    from qeguard.integrity.gate import open_context, work_tree
    from qeguard.integrity.sign import build_tiers, sign_tier

    tree = work_tree(open_context(root))
    config = parse_config(tree.read, label="working tree")
    assert config is not None
    (build,) = build_tiers(tree, config.policy, [config.policy.tier(tier)])
    sign_tier(root, build, config.policy, config.trust, None, now=datetime.now(UTC))


def test_verify_commit_checks_that_commits_files(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    write_files(repo, {CORE_FILE: "tampered\n"})
    git_run(repo, "commit", "-q", "-am", "tamper")
    assert verify_json(repo, "--commit", "HEAD~1")[0] == 0
    code, doc = verify_json(repo, "--commit", "HEAD")
    assert code == 1 and f"QG-INT-MODIFIED {CORE_FILE}" in rules(doc)
    r = run_qeguard("verify", "--staged", "--commit", "HEAD", cwd=repo)
    assert r.code == 2


# -- names resolve without git's guessing -----------------------------------------------------


def _two_commits(repo: Path) -> tuple[str, str]:
    write_files(repo, {"a": "1\n"})
    git_run(repo, "add", "a")
    git_run(repo, "commit", "-q", "-m", "one")
    first = git_run(repo, "rev-parse", "HEAD").strip()
    write_files(repo, {"a": "2\n"})
    git_run(repo, "commit", "-q", "-am", "two")
    return first, git_run(repo, "rev-parse", "HEAD").strip()


def test_full_names_commit_ids_and_steps_resolve(repo: Path) -> None:
    first, second = _two_commits(repo)
    g = GitRepo(repo)
    assert g.resolve("main") == second
    assert g.resolve("refs/heads/main") == second
    assert g.resolve("HEAD~1") == first
    assert g.resolve("main^") == first
    assert g.resolve(first) == first
    assert g.resolve(first[:10]) == first


def test_a_tag_shadowing_a_branch_is_ambiguous(repo: Path) -> None:
    first, second = _two_commits(repo)
    git_run(repo, "tag", "main", first)  # git would warn and take the tag
    with pytest.raises(GitError) as err:
        GitRepo(repo).resolve("main", where="--trust-ref", branch=True)
    assert "refs/heads/main" in err.value.message and "refs/tags/main" in err.value.message
    assert err.value.where == "--trust-ref"
    assert GitRepo(repo).resolve("refs/heads/main", branch=True) == second
    assert GitRepo(repo).resolve("refs/tags/main", branch=True) == first


def test_a_tag_where_a_branch_is_meant_is_refused(repo: Path) -> None:
    first, _ = _two_commits(repo)
    git_run(repo, "tag", "release", first)
    with pytest.raises(GitError) as err:
        GitRepo(repo).resolve("release", where="--trust-ref", branch=True)
    assert "is a tag (refs/tags/release)" in err.value.message
    assert GitRepo(repo).resolve("release") == first  # a tag is fine where any commit is


def test_a_name_starting_with_a_dash_is_never_an_option(repo: Path) -> None:
    _two_commits(repo)
    with pytest.raises(GitError):
        GitRepo(repo).resolve("--all")


def test_verify_commit_blames_the_commit_option(repo: Path) -> None:
    _two_commits(repo)
    r = run_qeguard("verify", "--commit", "nope", cwd=repo)
    assert r.code == 2
    assert "--commit: unknown revision 'nope'" in r.err and "--trust-ref" not in r.err


def test_shallow_clone_is_a_clear_configuration_error(
    tmp_path: Path, repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    protect(repo, keypair("alice"), keypair("bob"))
    write_files(repo, {"notes.txt": "more\n"})
    git_run(repo, "commit", "-q", "-am", "more")
    shallow = tmp_path / "shallow"
    git_run(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow))
    for args in (
        ("verify", "--trust-ref", "origin/main"),
        ("verify",),
        ("verify", "--staged"),
        ("ci", "--no-deps"),
    ):
        r = run_qeguard(*args, cwd=shallow)
        assert r.code == 2, (args, r.text)
        assert "shallow clone" in r.err and "fetch-depth: 0" in r.err, args
        assert "fetch --unshallow" in r.err and "Traceback" not in r.err, args
    # A pinned root inside the history that is there can still be walked.
    head = git_run(shallow, "rev-parse", "HEAD").strip()
    r = run_qeguard("verify", "--trust-root", head, cwd=shallow)
    assert r.code == 0, r.text
    git_run(shallow, "fetch", "-q", "--unshallow")
    assert run_qeguard("verify", "--trust-ref", "origin/main", cwd=shallow).code == 0


def test_a_collected_repository_does_not_wait_on_a_forked_process(repo: Path) -> None:
    """The cat-file process of a GitRepo ends when the object is collected. A process
    forked meanwhile (the scan's workers) holds a copy of its input pipe, so closing the
    pipe alone never ends git: the full test suite once hung there for good."""
    import gc
    import signal

    write_files(repo, {"a.txt": "a\n"})
    git_run(repo, "add", "a.txt")
    blob = git_run(repo, "rev-parse", ":a.txt").strip()
    g = GitRepo(repo)
    assert g.read_blob(blob) == b"a\n"  # starts `git cat-file`
    (proc,) = g._objects._procs.values()
    child = os.fork()
    if child == 0:  # holds every inherited descriptor, as an idle pool worker does
        signal.pause()
        os._exit(0)

    def hung(signum: int, frame: object) -> None:
        raise AssertionError("stopping git waited on the forked process")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        del g
        gc.collect()
        assert proc.returncode is not None  # git has ended
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
