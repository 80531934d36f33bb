"""Attacks on the bytes: line ends, submodules, oversized or ambiguous input, file names.

Each is a real repository with real commits and keys, checked in every mode a change
meets: the working tree (`verify`), the hook (`verify --staged`, before the commit), a
commit (`verify --commit HEAD`) and CI (`CI=true verify --trust-ref main`).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import (
    EXEC_FILE,
    FILES,
    KeyPair,
    Protected,
    commit,
    git_run,
    init_repo,
    rules,
    run_qeguard,
    verify_json,
)
from qeguard.git import GitRepo
from qeguard.integrity.keys import PublicKey
from qeguard.integrity.layout import envelope_path
from qeguard.integrity.trees.commit import CommitTree
from qeguard.integrity.trees.index import IndexTree

SCRIPT = b"#!/bin/sh\necho run\n"
INJECTED = b"#!/bin/sh\r\necho run\r\n"  # `run\r` is another command
SUBMODULE = "src/pkg/core/vendored"


@pytest.fixture
def ci(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], tuple[int, dict[str, object]]]:
    """CI's check of a checkout: `CI=true qeguard verify --trust-ref main`."""

    def run(root: Path, ref: str = "main") -> tuple[int, dict[str, object]]:
        with monkeypatch.context() as m:
            m.setenv("CI", "true")
            return verify_json(root, "--trust-ref", ref)

    return run


def _stage_raw(root: Path, path: str, data: bytes, mode: str = "100755") -> None:
    """Write `data` and stage it byte for byte, whatever the attributes say (what an
    attacker's own tooling or `git update-index` can always do)."""
    (root / path).write_bytes(data)
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--no-filters", "--stdin"],
        cwd=root,
        input=data,
        capture_output=True,
        check=True,
    ).stdout.decode()
    git_run(root, "update-index", "--add", "--cacheinfo", f"{mode},{blob.strip()},{path}")


def _blob(root: Path, rev: str) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "blob", rev], cwd=root, capture_output=True, check=True
    ).stdout


def _blocked(code: int, doc: dict[str, object], rule: str) -> bool:
    return code == 1 and rule in rules(doc)  # type: ignore[arg-type]


def _protected(root: Path, keys: tuple[KeyPair, KeyPair], attributes: str | None) -> Protected:
    files: dict[str, str | bytes] = dict(FILES)
    if attributes is not None:
        files[".gitattributes"] = attributes
    return Protected.build(root, keys, files=files, special=True)


# --- line ends ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attributes",
    [
        None,  # no rule at all, core.autocrlf=false
        "*.png -text\n",  # the substring "text" once made every path normalised
        "* text=auto\n",
        "*.sh text eol=lf\n",  # git would normalise this one; a committed CR still counts
    ],
)
def test_cr_injected_into_a_core_script_is_caught_in_every_mode(
    repo: Path,
    keypair: Callable[..., KeyPair],
    ci: Callable[..., tuple[int, dict[str, object]]],
    attributes: str | None,
) -> None:
    p = _protected(repo, (keypair("alice"), keypair("bob")), attributes)
    assert p.report()[0] == 0
    p.git("checkout", "-q", "-b", "attack")
    _stage_raw(repo, EXEC_FILE, INJECTED)
    modified = f"QG-INT-MODIFIED {EXEC_FILE}"
    assert _blocked(*p.report("--staged"), modified)
    git_run(repo, "commit", "-q", "-m", "harmless")
    assert _blob(repo, f"HEAD:{EXEC_FILE}") == INJECTED  # the commit holds the CRs
    assert _blocked(*p.report(), modified)
    assert _blocked(*p.report("--commit", "HEAD"), modified)
    assert _blocked(*ci(repo), modified)


def test_cr_injection_is_caught_on_a_runner_with_autocrlf(
    tmp_path: Path,
    repo: Path,
    keypair: Callable[..., KeyPair],
    ci: Callable[..., tuple[int, dict[str, object]]],
) -> None:
    p = _protected(repo, (keypair("alice"), keypair("bob")), None)
    runner = tmp_path / "runner"
    git_run(tmp_path, "-c", "core.autocrlf=true", "clone", "-q", str(repo), str(runner))
    for key, value in (("core.autocrlf", "true"), ("user.name", "R"), ("user.email", "r@x")):
        git_run(runner, "config", key, value)
    assert b"\r\n" in (runner / EXEC_FILE).read_bytes()  # a CRLF checkout...
    assert ci(runner, "origin/main")[0] == 0  # ...of the signed tree is clean
    git_run(runner, "checkout", "-q", "-b", "attack")
    _stage_raw(runner, EXEC_FILE, INJECTED)
    modified = f"QG-INT-MODIFIED {EXEC_FILE}"
    assert _blocked(*verify_json(runner, "--staged"), modified)
    git_run(runner, "commit", "-q", "-m", "harmless")
    # Looks exactly like the CRLF checkout above, but the commit holds the CRs.
    assert (runner / EXEC_FILE).read_bytes() == INJECTED
    assert _blocked(*ci(runner, "origin/main"), modified)
    assert _blocked(*verify_json(runner, "--commit", "HEAD"), modified)
    assert p.report()[0] == 0  # the signed repository itself is untouched


@pytest.mark.parametrize(
    ("attributes", "config"),
    [
        (None, ("core.autocrlf", "true")),
        ("* text=auto eol=crlf\n", None),
        ("* text\n", ("core.eol", "crlf")),
    ],
)
def test_a_crlf_checkout_of_a_tree_signed_on_linux_is_clean(
    tmp_path: Path,
    repo: Path,
    keypair: Callable[..., KeyPair],
    ci: Callable[..., tuple[int, dict[str, object]]],
    attributes: str | None,
    config: tuple[str, str] | None,
) -> None:
    _protected(repo, (keypair("alice"), keypair("bob")), attributes)
    clone = tmp_path / "windows"
    flags = ["-c", f"{config[0]}={config[1]}"] if config else []
    git_run(tmp_path, *flags, "clone", "-q", str(repo), str(clone))
    if config:
        git_run(clone, "config", *config)
    assert b"\r\n" in (clone / EXEC_FILE).read_bytes()
    assert b"\r\n" in (clone / ".qeguard/policy.toml").read_bytes()
    for args in ((), ("--staged",), ("--commit", "HEAD")):
        code, doc = verify_json(clone, *args)
        assert code == 0, (args, rules(doc))  # type: ignore[arg-type]
    assert ci(clone, "origin/main")[0] == 0


def test_a_binary_attribute_elsewhere_does_not_normalise_a_core_script(repo: Path) -> None:
    init_repo(repo)
    (repo / ".gitattributes").write_text("*.png -text\n*.txt text\n")
    (repo / "run.sh").write_bytes(INJECTED)
    (repo / "notes.txt").write_bytes(b"a\r\n")
    (repo / "sub").mkdir()
    (repo / "sub/.gitattributes").write_text("*.sh text\n")
    (repo / "sub/run.sh").write_bytes(b"a\r\n")
    (repo / ".git/info/attributes").write_text("local.sh text\n")
    (repo / "local.sh").write_bytes(b"a\r\n")
    commit(repo, "x", ["notes.txt", ".gitattributes", "sub/.gitattributes"])
    converted = GitRepo(repo).eol_converted(
        ["run.sh", "notes.txt", "sub/run.sh", "local.sh", "missing.txt.png"]
    )
    # notes.txt is staged (LF in the index) and `text`; sub/ and info/attributes rules
    # apply at their level; run.sh has no rule. Only staged-clean or unstaged paths.
    assert converted == {"notes.txt", "sub/run.sh", "local.sh"}
    git_run(repo, "config", "core.autocrlf", "true")
    assert "run.sh" in GitRepo(repo).eol_converted(["run.sh"])


@pytest.mark.parametrize("autocrlf", ["false", "true", "input"])
def test_which_paths_are_normalised_is_what_git_add_does(repo: Path, autocrlf: str) -> None:
    # git itself is the oracle: every combination of `text`, `eol` and the old `crlf`
    # attribute, asked before the files are staged, then `git add` shows what git did.
    git_run(repo, "config", "core.autocrlf", autocrlf)
    texts = ["", "text", "-text", "text=auto", "text=input", "!text", "binary", "text=other"]
    eols = ["", "eol=lf", "eol=crlf"]
    crlfs = ["", "crlf", "-crlf", "crlf=input"]
    lines, paths = [], []
    for i, text in enumerate(texts):
        for j, eol in enumerate(eols):
            for k, crlf in enumerate(crlfs):
                path = f"f{i}{j}{k}.txt"
                attrs = " ".join(a for a in (text, eol, crlf) if a)
                if attrs:
                    lines.append(f"{path} {attrs}")
                (repo / path).write_bytes(b"one\r\ntwo\r\n")
                paths.append(path)
    (repo / ".gitattributes").write_text("\n".join(lines) + "\n")
    predicted = GitRepo(repo).eol_converted(paths)
    git_run(repo, "add", "-A")
    actual = {p for p in paths if b"\r" not in _blob(repo, f":{p}")}
    assert predicted == actual


# --- submodules ---------------------------------------------------------------------------


def _submodule_source(tmp_path: Path) -> tuple[Path, str, str]:
    """A repository to use as a submodule, with two commits: (path, first, second)."""
    sub = init_repo(tmp_path / "library")
    (sub / "lib.py").write_text("SAFE = True\n")
    first = commit(sub, "v1")
    (sub / "lib.py").write_text("SAFE = False  # the malicious bump\n")
    second = commit(sub, "v2")
    git_run(sub, "checkout", "-q", first)
    return sub, first, second


@pytest.fixture
def with_submodule(
    tmp_path: Path, repo: Path, keypair: Callable[..., KeyPair]
) -> Iterator[tuple[Protected, str, str]]:
    sub, first, second = _submodule_source(tmp_path)
    git_run(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), SUBMODULE)
    git_run(repo, "-C", SUBMODULE, "checkout", "-q", first)
    git_run(repo, "add", SUBMODULE)
    p = Protected.build(repo, [keypair("alice"), keypair("bob")])
    yield p, first, second


def test_a_submodule_is_a_signed_gitlink_entry(with_submodule: tuple[Protected, str, str]) -> None:
    p, first, _ = with_submodule
    assert f"{first} 160000 gitlink {SUBMODULE}\n" in p.list_bytes("core").decode()
    for args in ((), ("--commit", "HEAD")):
        code, doc = p.report(*args)
        assert code == 0, rules(doc)


def test_an_unsigned_submodule_bump_is_blocked_in_every_mode_and_a_signed_one_passes(
    tmp_path: Path,
    with_submodule: tuple[Protected, str, str],
    ci: Callable[..., tuple[int, dict[str, object]]],
) -> None:
    p, first, second = with_submodule
    p.git("checkout", "-q", "-b", "bump")
    p.git("-C", SUBMODULE, "checkout", "-q", second)
    moved = f"QG-INT-MODIFIED {SUBMODULE}"
    assert _blocked(*p.report(), moved)  # the working tree: the submodule's HEAD
    p.git("add", SUBMODULE)
    assert _blocked(*p.report("--staged"), moved)
    p.commit("bump the library")
    assert _blocked(*p.report("--commit", "HEAD"), moved)
    assert _blocked(*ci(p.root), moved)
    # CI's default checkout leaves submodules empty: the commit the index records counts.
    runner = tmp_path / "runner"
    git_run(tmp_path, "clone", "-q", "-b", "bump", str(p.root), str(runner))
    assert not any((runner / SUBMODULE).iterdir())
    assert _blocked(*ci(runner, "origin/main"), moved)
    # The tier's signers approve the bump: every mode passes.
    p.sign()
    p.git("add", ".qeguard")
    code, doc = p.report("--staged")
    assert code == 0, rules(doc)  # type: ignore[arg-type]
    p.commit("sign the bump")
    assert f"{second} 160000 gitlink {SUBMODULE}" in p.list_bytes("core").decode()
    for args in ((), ("--commit", "HEAD")):
        code, doc = p.report(*args)
        assert code == 0, (args, rules(doc))  # type: ignore[arg-type]
    code, doc = ci(p.root)
    assert code == 0, rules(doc)  # type: ignore[arg-type]
    assert first not in p.list_bytes("core").decode()


def test_a_bump_signed_by_one_of_two_is_blocked_in_ci(
    with_submodule: tuple[Protected, str, str],
    ci: Callable[..., tuple[int, dict[str, object]]],
) -> None:
    p, _, second = with_submodule
    p.git("checkout", "-q", "-b", "bump")
    p.git("-C", SUBMODULE, "checkout", "-q", second)
    p.sign(p.signer("alice"))
    p.commit("bump, signed by one")
    code, doc = ci(p.root)
    assert code == 1 and "QG-SIG-THRESHOLD .qeguard/manifests/core.dsse.json" in rules(doc)  # type: ignore[arg-type]


# --- bounded input ------------------------------------------------------------------------


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each message a signature verification was attempted over (the real
    check still runs)."""
    calls: list[int] = []
    real = PublicKey.verify

    def counting(self: PublicKey, signature: bytes, message: bytes) -> bool:
        calls.append(len(message))
        return real(self, signature, message)

    monkeypatch.setattr(PublicKey, "verify", counting)
    return calls


@pytest.mark.parametrize("shape", ["10000 signatures", "50 MB payload"])
def test_oversized_envelopes_are_refused_before_any_verification(
    repo: Path,
    keypair: Callable[..., KeyPair],
    ci: Callable[..., tuple[int, dict[str, object]]],
    verifications: list[int],
    shape: str,
) -> None:
    p = Protected.build(repo, [keypair("alice"), keypair("bob")])
    p.git("checkout", "-q", "-b", "attack")
    env = json.loads((repo / envelope_path("core")).read_bytes())
    junk = base64.b64encode(os.urandom(64)).decode()
    if shape == "10000 signatures":
        env["signatures"] = [{"keyid": "", "sig": ""}] * 10_000
    else:
        env["payload"] = base64.b64encode(b"{" + b" " * 50_000_000 + b"}").decode()
        env["signatures"] = [{"keyid": f"k{i}", "sig": junk} for i in range(16)]
    (repo / envelope_path("core")).write_text(json.dumps(env, separators=(",", ":")))
    p.commit("attack")
    verifications.clear()
    code, doc = ci(repo)
    assert code == 1
    assert "QG-SIG-MALFORMED .qeguard/manifests/core.dsse.json" in rules(doc)  # type: ignore[arg-type]
    # Only the other tiers' small, valid envelopes were verified: nothing over the hostile
    # one, whose signatures (or payload) were refused unread.
    assert all(size < 4096 for size in verifications), max(verifications)
    assert len(verifications) < 16


def test_hooks_hash_a_large_blob_with_bounded_memory(repo: Path) -> None:
    size = 32 << 20
    with open(repo / "model.bin", "wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
    commit(repo, "weights")
    git = GitRepo(repo)
    for tree in (IndexTree(git), CommitTree(git, "HEAD")):
        tracemalloc.start()
        try:
            seen = tree.observe(["model.bin"])["model.bin"]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert seen.sha256 is not None and len(seen.sha256) == 64
        assert peak < size // 8, (type(tree).__name__, peak)
    # The same digest as hashing the bytes whole (what the streaming must equal).
    import hashlib

    assert seen.sha256 == hashlib.sha256((repo / "model.bin").read_bytes()).hexdigest()


# --- names ----------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="a backslash is a separator on Windows")
def test_a_name_with_a_backslash_that_sign_lists_verifies(
    repo: Path,
    keypair: Callable[..., KeyPair],
    ci: Callable[..., tuple[int, dict[str, object]]],
) -> None:
    name = "src/pkg/core/a\\b.py"
    p = Protected.build(repo, [keypair("alice"), keypair("bob")], files={**FILES, name: "x\n"})
    assert '"src/pkg/core/a\\\\b.py"' in p.list_bytes("core").decode()
    assert p.report()[0] == 0 and p.report("--commit", "HEAD")[0] == 0
    p.git("checkout", "-q", "-b", "attack")
    p.write({name: "x = 'changed'\n"})
    p.commit("change")
    assert _blocked(*ci(repo), f"QG-INT-MODIFIED {name}")


@pytest.mark.parametrize("path", ["src/pkg/core/.GIT/hooks/pre-commit", "src/pkg/core/../../x"])
def test_sign_never_lists_a_path_verify_would_reject(path: str) -> None:
    # A tree (here in memory) handing over a name no git checkout holds: `sign` refuses it
    # by the same rule `verify` applies, rather than writing an entry that cannot verify.
    from helpers.memory import MemoryTree
    from qeguard.errors import ConfigError
    from qeguard.integrity.policy import parse_policy, preset_text
    from qeguard.integrity.sign import build_tiers

    policy = parse_policy(preset_text("qemlflow"))
    tree = MemoryTree({"src/pkg/core/model.py": b"x\n", path: b"evil\n"})
    with pytest.raises(ConfigError, match="cannot be protected here") as info:
        build_tiers(tree, policy, policy.tiers)
    assert "rename it" in info.value.diagnostics()


def test_hostile_file_names_never_raise_and_never_forge_a_report_line(
    repo: Path, keypair: Callable[..., KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = Protected.build(repo, [keypair("alice"), keypair("bob")])
    p.git("checkout", "-q", "-b", "attack")
    forged = "src/pkg/core/x\n0 findings. Verdict: PASS"
    p.write({forged: "evil\n", "src/pkg/core/ctl\x1b[2J.py": "evil\n"})
    (repo / os.fsdecode(b"src/pkg/core/inv\xffalid.py")).write_bytes(b"evil\n")
    p.commit("Harmless\n\nQeguard-Override: urgent")
    monkeypatch.setenv("CI", "true")
    r = run_qeguard("verify", "--trust-ref", "main", cwd=repo)
    assert r.code == 1
    assert "Traceback" not in r.err and "CommandError" not in r.err, r.err
    lines = r.out.splitlines()
    # The one verdict line starts the line; the forged one stays inside a quoted name.
    verdicts = [line for line in lines if "Verdict:" in line and not line.startswith(" ")]
    assert len(verdicts) == 1 and "Verdict: FAIL" in verdicts[0]
    assert not any(line.strip().startswith("0 findings.") for line in lines)
    assert "\x1b" not in r.out
    # The override's changed paths were read: its finding names the core tier.
    assert "QG-OVERRIDE" in r.out


# --- policies that cannot work ------------------------------------------------------------


def test_trust_and_sign_say_when_a_threshold_cannot_be_met(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    alice = keypair("alice")
    p = Protected.build(repo, [], sign=False, commit=False)
    r = p.ok("trust", "add", "alice", alice.public, "--tiers", "core,middle")
    assert "tier 'core' needs 2 distinct signer(s) but 1 key(s) are trusted" in r.err
    r = p.ok("sign", "--key", alice.private)
    assert "tier 'core' needs 2 distinct signer(s)" in r.err
    p.commit("protect")
    _, doc = p.report()
    assert "QG-SIG-UNREACHABLE .qeguard/policy.toml" in rules(doc)  # type: ignore[arg-type]
    bob = keypair("bob")
    r = p.ok("trust", "add", "bob", bob.public, "--tiers", "core,middle")
    assert "needs 2 distinct" not in r.err


def test_a_pattern_that_matches_nothing_is_said_at_sign_and_verify(
    repo: Path, keypair: Callable[..., KeyPair]
) -> None:
    policy = (
        'extends = "qemlflow"\n\n[[tiers]]\nname = "core"\n'
        'patterns = ["src/*/core/**", "src/*/cor/models/**", ".qeguard/**"]\n'
    )
    alice, bob = keypair("alice"), keypair("bob")
    p = Protected.build(repo, [alice, bob], policy=policy, sign=False, commit=False)
    r = p.ok("sign", "--key", alice.private)
    assert "pattern 'src/*/cor/models/**' matches no file" in r.err
    p.sign(bob)
    p.commit("protect")
    code, doc = p.report()
    assert code == 0  # a warning, not a failure
    assert rules(doc) == ["QG-INT-UNMATCHED .qeguard/policy.toml"]  # type: ignore[arg-type]


def test_the_qemlflow_core_covers_what_changes_how_code_runs(
    repo: Path,
    keypair: Callable[..., KeyPair],
    ci: Callable[..., tuple[int, dict[str, object]]],
) -> None:
    p = Protected.build(repo, [keypair("alice"), keypair("bob")])
    p.git("checkout", "-q", "-b", "attack")
    added = {
        ".pre-commit-config.yaml": "repos: []\n",
        ".gitattributes": "*.sh text\n",
        ".gitmodules": "",
        "setup.cfg": "[tool:pytest]\naddopts = -p evil\n",
        "tox.ini": "[tox]\n",
        "tests/conftest.py": "import evil\n",
        "noxfile.py": "import evil\n",
    }
    p.write(added)
    p.commit("tooling")
    code, doc = ci(repo)
    assert code == 1
    core = {
        f["location"]["path"]  # type: ignore[index]
        for f in doc["findings"]  # type: ignore[attr-defined]
        if f["rule"] == "QG-INT-ADDED" and f["tier"] == "core"
    }
    assert core == set(added)
