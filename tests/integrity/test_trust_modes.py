"""Every attack in every mode: plain verify, `--commit`, CI (`CI=true verify --trust-ref`,
`qeguard ci` with and without a ref), the action's command line, the project's
file-protection step, and the native hooks run by real `git commit` / `git push`.

Each attack is a real branch of real commits signed with real keys, pushed for review to
a real bare remote. Strict modes must fail it; the hooks fail it too, except for the one
local relaxation (a tier short of its threshold with at least one valid trusted
signature), which passes there with a visible warning.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import (
    CORE_FILE,
    FILES,
    MIDDLE_FILE,
    KeyPair,
    Protected,
    Run,
    git_run,
    run_qeguard,
    sign,
    with_bare_remote,
    write_files,
)
from helpers.workflows import ACTION, FILE_PROTECTION, fake_venv, run_step
from qeguard.integrity.dsse import Envelope, Signature
from qeguard.integrity.keys import load_signing_key
from qeguard.integrity.layout import envelope_path

STRICT = ("plain", "commit", "ci-verify", "ci", "ci-no-ref", "action", "file-protection")


@dataclass
class World:
    """A protected repository (alice and bob, qemlflow preset) with a bare origin, hooks
    installed, and the branch `attack` checked out."""

    p: Protected
    tmp: Path
    keys: Callable[[str], KeyPair]

    @property
    def root(self) -> Path:
        return self.p.root

    def mode(self, name: str) -> Run:
        """Run the committed branch through one strict mode."""
        if name == "plain":
            return run_qeguard("verify", cwd=self.root)
        if name == "commit":
            return run_qeguard("verify", "--commit", "HEAD", cwd=self.root)
        ci = {"CI": "true"}
        if name == "ci-verify":
            return _with_env(ci, "verify", "--trust-ref", "origin/main", cwd=self.root)
        if name == "ci":
            return _with_env(ci, "ci", "--no-deps", "--trust-ref", "origin/main", cwd=self.root)
        if name == "ci-no-ref":  # what a push build without a base runs
            return _with_env(ci, "ci", "--no-deps", cwd=self.root)
        contexts = {"github.event_name": "pull_request", "github.base_ref": "main"}
        runner = self.tmp / f"runner-{name}"
        fake_venv(runner)
        if name == "action":
            contexts |= {"inputs.sarif": str(runner / "out.sarif"), "inputs.online": "false"}
            proc = run_step(
                ACTION, "Run qeguard ci", cwd=self.root, runner_temp=runner, contexts=contexts
            )
        else:
            proc = run_step(
                FILE_PROTECTION,
                "Verify with trust from the pinned root",
                cwd=self.root,
                runner_temp=runner,
                contexts=contexts,
            )
        return Run(code=proc.returncode, out=proc.stdout, err=proc.stderr)

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Real git with the hooks, as on a developer's machine (no CI variables)."""
        env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        return subprocess.run(
            ["git", *args], cwd=self.root, env=env, capture_output=True, text=True, check=False
        )


def _with_env(env: dict[str, str], *args: str, cwd: Path) -> Run:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return run_qeguard(*args, cwd=cwd)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def world(tmp_path: Path, keypair: Callable[..., KeyPair]) -> Iterator[World]:
    # A dependency file too: `qeguard ci` (and the action) fail a scan that checked nothing.
    files = {**FILES, "requirements.txt": "packaging==24.1\n"}
    p = Protected.build(tmp_path / "repo", [keypair("alice"), keypair("bob")], files=files)
    with_bare_remote(tmp_path, p.root)
    assert run_qeguard("install-hooks", cwd=p.root).code == 0
    git_run(p.root, "checkout", "-q", "-b", "attack")
    yield World(p=p, tmp=tmp_path, keys=keypair)


def _add_signature(root: Path, tier: str, signature: Signature) -> None:
    path = root / envelope_path(tier)
    env = Envelope.from_bytes(path.read_bytes(), source="test")
    path.write_bytes(env.with_signature(signature).to_bytes())


def _check(w: World, *, relaxed: bool, message: str) -> None:
    """Commit what is in the working tree through the real pre-commit hook, push it
    through the real pre-push hook, then run every strict mode."""
    git_run(w.root, "add", "-A")
    hook = w.git("commit", "-q", "-m", message)
    out = hook.stdout + hook.stderr
    if relaxed:
        assert hook.returncode == 0, out
        assert "QG-SIG-THRESHOLD" in out and "allowed in this hook, CI blocks" in out
    else:
        assert hook.returncode != 0, out
        git_run(w.root, "commit", "-q", "--no-verify", "-m", message)
    push = w.git("push", "-q", "origin", "attack")
    assert (push.returncode == 0) is relaxed, push.stdout + push.stderr
    for name in STRICT:
        r = w.mode(name)
        assert r.code == 1, (name, r.text)


def test_an_unsigned_core_change_fails_everywhere(world: World) -> None:
    write_files(world.root, {CORE_FILE: "def predict(x):\n    return 0\n"})
    _check(world, relaxed=False, message="unsigned core change")


def test_a_branch_that_trusts_its_own_keys_fails_everywhere(world: World) -> None:
    m1, m2 = world.keys("mallory1"), world.keys("mallory2")
    for k in (m1, m2):
        assert world.p.cli("trust", "add", k.name, k.public, "--tiers", "core,middle").code == 0
    write_files(world.root, {CORE_FILE: "def predict(x):\n    return 0\n"})
    sign(world.root, m1)
    sign(world.root, m2)
    # Under its own trust the branch is perfectly signed; that must count for nothing.
    _check(world, relaxed=False, message="trust my keys")
    r = world.mode("ci-no-ref")
    assert "QG-TRUST-CHANGE" in r.out and "QG-SIG-THRESHOLD" in r.out


def test_one_of_two_signatures_blocks_except_in_the_hooks(world: World) -> None:
    write_files(world.root, {CORE_FILE: "def predict(x):\n    return 3 * x\n"})
    sign(world.root, world.p.signer("alice"), "core")
    _check(world, relaxed=True, message="core change, alice only")


def test_a_garbled_second_signature_blocks_except_in_the_hooks(world: World) -> None:
    write_files(world.root, {CORE_FILE: "def predict(x):\n    return 3 * x\n"})
    sign(world.root, world.p.signer("alice"), "core")
    bob = load_signing_key(world.p.signer("bob").private)
    _add_signature(world.root, "core", Signature(keyid=bob.public.keyid, sig=b"\x01" * 64))
    _check(world, relaxed=True, message="core change, alice and a garbled bob")
    r = world.mode("plain")
    assert "unknown key or bad signature" in r.out


def test_an_untrusted_key_topping_up_blocks_except_in_the_hooks(world: World) -> None:
    write_files(world.root, {CORE_FILE: "def predict(x):\n    return 3 * x\n"})
    sign(world.root, world.p.signer("alice"), "core")
    mallory = load_signing_key(world.keys("mallory").private)
    env = Envelope.from_bytes((world.root / envelope_path("core")).read_bytes(), source="t")
    _add_signature(
        world.root, "core", Signature(keyid=mallory.public.keyid, sig=mallory.sign(env.pae))
    )
    _check(world, relaxed=True, message="core change, alice and mallory")


def test_a_rolled_back_manifest_fails_everywhere(world: World) -> None:
    alice, bob = world.p.signer("alice"), world.p.signer("bob")
    git_run(world.root, "checkout", "-q", "main")
    old = git_run(world.root, "rev-parse", "HEAD").strip()
    write_files(world.root, {CORE_FILE: "def predict(x):\n    return 2 * x  # fixed\n"})
    sign(world.root, alice, "core")
    sign(world.root, bob, "core")
    assert world.git("commit", "-q", "-am", "security fix, co-signed").returncode == 0
    assert world.git("push", "-q", "origin", "main").returncode == 0
    git_run(world.root, "checkout", "-q", "-B", "attack")
    git_run(world.root, "checkout", "-q", old, "--", ".qeguard/manifests", CORE_FILE)
    _check(world, relaxed=False, message="bring back the old version")
    assert "QG-SIG-ROLLBACK" in world.mode("ci").out


def test_a_custom_policy_location_cannot_redirect_trust(world: World) -> None:
    """`[tool.qeguard] policy` once chose which file was the trusted policy; now it is a
    configuration error in every mode, never a weaker policy."""
    write_files(
        world.root,
        {
            "docs/weak.toml": '[[tiers]]\nname = "outer"\nthreshold = 0\npatterns = ["docs/**"]\n',
            "pyproject.toml": '[tool.qeguard]\npolicy = "docs/weak.toml"\n',
            CORE_FILE: "def predict(x):\n    return 0\n",
        },
    )
    git_run(world.root, "add", "-A")
    git_run(world.root, "commit", "-q", "--no-verify", "-m", "redirect the policy")
    for name in STRICT:
        r = world.mode(name)
        assert r.code == 2, (name, r.text)
        assert "tool.qeguard.policy" in r.text, name


def test_a_tag_cannot_shadow_the_trust_ref(world: World) -> None:
    """A pushed tag named `main` or `origin/main`, at a commit that trusts the attacker,
    is refused as a short name; the full names always mean the branch."""
    mallory = world.keys("mallory")
    assert (
        world.p.cli("trust", "add", "mallory", mallory.public, "--tiers", "core,middle").code == 0
    )
    write_files(world.root, {CORE_FILE: "def predict(x):\n    return 0\n"})
    sign(world.root, mallory)
    git_run(world.root, "commit", "-q", "--no-verify", "-am", "mallory's world")
    for tag in ("main", "origin/main"):
        git_run(world.root, "tag", tag, "HEAD")
        r = _with_env({"CI": "true"}, "verify", "--trust-ref", tag, cwd=world.root)
        assert r.code == 2, (tag, r.text)
        assert "ambiguous" in r.err and f"refs/tags/{tag}" in r.err, tag
    for full in ("refs/heads/main", "refs/remotes/origin/main"):
        r = _with_env({"CI": "true"}, "verify", "--trust-ref", full, cwd=world.root)
        assert r.code == 1 and "QG-TRUST-CHANGE" in r.out, (full, r.text)
    # The action and the workflow pass full names: the tags change nothing there.
    assert world.mode("action").code == 1
    assert world.mode("file-protection").code == 1


def test_a_clean_branch_passes_everywhere(world: World) -> None:
    alice, bob = world.p.signer("alice"), world.p.signer("bob")
    write_files(
        world.root, {CORE_FILE: "def predict(x):\n    return 5 * x\n", MIDDLE_FILE: "H = 3\n"}
    )
    sign(world.root, alice)
    sign(world.root, bob, "core")
    git_run(world.root, "add", "-A")
    hook = world.git("commit", "-q", "-m", "co-signed change")
    assert hook.returncode == 0, hook.stdout + hook.stderr
    push = world.git("push", "-q", "origin", "attack")
    assert push.returncode == 0, push.stdout + push.stderr
    for name in STRICT:
        r = world.mode(name)
        assert r.code == 0, (name, r.text)
