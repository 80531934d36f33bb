"""Signing: co-signing, new payloads, untrusted keys, SSH keys, and interrupted writes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import qeguard.fsutil
import qeguard.integrity.sign
from helpers import KeyPair, Protected, Run
from qeguard.integrity.layout import envelope_path, list_path

needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed"
)

POLICY = """\
[[tiers]]
name = "a"
threshold = 1
patterns = ["a/**", ".qeguard/**"]

[[tiers]]
name = "b"
threshold = 1
patterns = ["b/**"]

[[tiers]]
name = "c"
threshold = 0
on_change = "warn"
patterns = ["c/**"]
"""


@pytest.fixture
def project(repo: Path, keypair: Any) -> Protected:
    """Three tiers (a, b signed by one of alice and bob; c unsigned), nothing signed yet."""
    return Protected.build(
        repo,
        [keypair("alice"), keypair("bob")],
        files={"a/x.py": "x = 1\n", "b/y.py": "y = 1\n", "c/z.md": "z\n"},
        policy=POLICY,
        tiers="a,b",
        sign=False,
        commit=False,
    )


def sign(project: Protected, key: KeyPair, *extra: str) -> Run:
    """`qeguard sign --key KEY EXTRA`, whatever it exits with."""
    return project.cli("sign", "--key", key.private, *extra)


def test_sign_every_tier_then_one(project: Protected) -> None:
    r = sign(project, project.signer("alice"))
    assert r.code == 0, r.err
    assert "a: new payload (sequence 1" in r.out and "b: new payload" in r.out
    assert "c: unsigned (sequence 1, 1 file)" in r.out
    assert len(project.envelope("c").signatures) == 0
    (project.root / "b/y.py").write_text("y = 2\n")
    r = sign(project, project.signer("alice"), "--tier", "b")
    assert r.code == 0 and r.out.startswith("b: new payload (sequence 2")
    assert "a:" not in r.out
    assert project.payload("a").sequence == 1 and project.payload("b").sequence == 2


def test_cosign_adds_to_the_same_payload(project: Protected) -> None:
    sign(project, project.signer("alice"))
    before = project.envelope("a")
    r = sign(project, project.signer("bob"))
    assert "a: co-signed (sequence 1" in r.out
    after = project.envelope("a")
    assert after.payload == before.payload and len(after.signatures) == 2
    r = sign(project, project.signer("bob"))
    assert "a: already signed" in r.out
    assert len(project.envelope("a").signatures) == 2


def test_changed_content_starts_a_new_payload(project: Protected) -> None:
    sign(project, project.signer("alice"))
    sign(project, project.signer("bob"))
    (project.root / "a/x.py").write_text("x = 2\n")
    r = sign(project, project.signer("bob"))
    assert "a: new payload (sequence 2" in r.out
    env = project.envelope("a")
    assert len(env.signatures) == 1  # alice signed other content; her signature is gone
    assert "b: already signed" in r.out


def test_untrusted_key_fails_says_why_and_writes_nothing(project: Protected, keypair: Any) -> None:
    sign(project, project.signer("alice"))
    mallory = keypair("mallory")
    (project.root / "a/x.py").write_text("x = 666\n")
    before = project.envelope("a")
    r = sign(project, mallory)
    assert r.code == 2 and "nothing was signed" in r.err
    assert "is not trusted at all" in r.err and "next:" not in r.err
    assert project.envelope("a") == before  # alice's manifest is left as it was
    r = sign(project, mallory, "--tier", "a")
    assert r.code == 2 and "tier 'a': key" in r.err


def test_sequence_advances_over_head(project: Protected) -> None:
    sign(project, project.signer("alice"))
    project.commit()
    (project.root / "b/y.py").write_text("y = 2\n")
    sign(project, project.signer("alice"))
    project.commit()
    # The working copy of b's manifest is lost (e.g. checked out from an old branch):
    # signing again must still move past HEAD's sequence, never back to 1.
    (project.root / envelope_path("b")).unlink()
    (project.root / list_path("b")).unlink()
    (project.root / "b/y.py").write_text("y = 3\n")
    sign(project, project.signer("alice"))
    assert project.payload("b").sequence == 3


def test_loose_key_permissions_exit_2(project: Protected) -> None:
    os.chmod(project.signer("alice").private, 0o644)
    r = sign(project, project.signer("alice"))
    assert r.code == 2
    assert str(project.signer("alice").private) in r.err and "chmod 600" in r.err
    assert "Traceback" not in r.err
    assert not (project.root / envelope_path("a")).exists()


def test_unreadable_key_exit_2(project: Protected, tmp_path: Path, run_cli: Any) -> None:
    r = run_cli("sign", "--key", tmp_path / "nope", cwd=project.root)
    assert r.code == 2 and "nope" in r.err and "cannot read the key" in r.err
    r = run_cli("sign", cwd=project.root)
    assert r.code == 2 and "--key" in r.err


def test_key_from_env_with_passphrase(
    project: Protected, keypair: Any, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    carol = keypair("carol", passphrase=b"secret")
    run_cli("trust", "add", "carol", carol.public, "--tiers", "a,b", cwd=project.root)
    monkeypatch.setenv("QEGUARD_KEY", str(carol.private))
    r = run_cli("sign", cwd=project.root)
    assert r.code == 2 and "QEGUARD_KEY_PASSPHRASE" in r.err
    monkeypatch.setenv("QEGUARD_KEY_PASSPHRASE", "secret")
    r = run_cli("sign", cwd=project.root)
    assert r.code == 0, r.err
    assert project.verify().exit_code == 0


@needs_ssh_keygen
@pytest.mark.parametrize("use_ssh", [False, True])
def test_openssh_key_made_by_ssh_keygen(
    project: Protected, tmp_path: Path, run_cli: Any, use_ssh: bool
) -> None:
    key = tmp_path / "ssh" / "id_ed25519"
    key.parent.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dana", "-f", str(key)], check=True
    )
    r = run_cli("trust", "add", "dana", f"{key}.pub", "--tiers", "a,b", cwd=project.root)
    assert r.code == 0, r.err
    r = run_cli("sign", *(["--ssh"] if use_ssh else []), "--key", key, cwd=project.root)
    assert r.code == 0, r.err
    sigs = project.envelope("a").signatures
    assert len(sigs) == 1 and sigs[0].sig.startswith(b"SSHSIG") is use_ssh
    report = project.verify()
    assert report.exit_code == 0, report.findings
    assert {t.name: t.signers for t in report.tiers}["a"] == ("dana",)


@needs_ssh_keygen
def test_passphrase_ssh_keygen_key(
    project: Protected, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "id_locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key)], check=True
    )
    run_cli("trust", "add", "erin", f"{key}.pub", "--tiers", "a,b", cwd=project.root)
    monkeypatch.setenv("QEGUARD_KEY_PASSPHRASE", "secret")
    r = run_cli("sign", "--key", key, cwd=project.root)
    assert r.code == 0, r.err
    assert project.verify().exit_code == 0


# Interrupted signing. atomic_write is the real one, made to fail at chosen points:
# fault injection, with real keys, real files and real verification.


def _temp_files(root: Path) -> list[Path]:
    return [p for p in (root / ".qeguard").rglob("*") if p.name.endswith(".tmp")]


class Crash(Exception):
    pass


def _crash_on_call(monkeypatch: pytest.MonkeyPatch, n: int) -> list[Path]:
    """Make the n-th atomic_write from guard.sign fail before touching the file."""
    calls: list[Path] = []
    real = qeguard.fsutil.atomic_write

    def flaky(path: Path, data: bytes, **kw: Any) -> None:
        calls.append(path)
        if len(calls) == n + 1:
            raise Crash(f"crash writing {path.name}")
        real(path, data, **kw)

    monkeypatch.setattr(qeguard.integrity.sign, "atomic_write", flaky)
    return calls


def test_crash_on_envelope_write_never_verifies_new_content(
    project: Protected, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign(project, project.signer("alice"))
    project.commit()
    (project.root / "a/x.py").write_text("x = 'unsigned'\n")

    def crash_on_envelope(path: Path, data: bytes, **kw: Any) -> None:
        if path.name.endswith(".dsse.json"):
            raise Crash("power cut")
        qeguard.fsutil.atomic_write(path, data, **kw)

    monkeypatch.setattr(qeguard.integrity.sign, "atomic_write", crash_on_envelope)
    r = sign(project, project.signer("alice"))
    monkeypatch.undo()
    assert r.code == 3 and "power cut" in r.err
    # The new list is on disk, but no envelope binds it: that must not verify.
    report = project.verify()
    assert report.exit_code == 1
    assert "QG-SIG-BINDING" in {f.rule for f in report.findings if f.tier == "a"}
    assert _temp_files(project.root) == []
    r = sign(project, project.signer("alice"))
    assert r.code == 0, r.err
    assert project.verify().exit_code == 0


def test_crash_at_any_write_never_verifies_unsigned_content(
    project: Protected, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign(project, project.signer("alice"))
    project.commit()
    assert project.verify().exit_code == 0
    # Writes in a fresh sign: a.list, a.dsse.json, b.list, b.dsse.json, then c.list.
    for n in range(4):
        (project.root / "a/x.py").write_text(f"x = 'change {n}'\n")
        (project.root / "b/y.py").write_text(f"y = 'change {n}'\n")
        calls = _crash_on_call(monkeypatch, n)
        r = sign(project, project.signer("alice"))
        monkeypatch.undo()
        assert r.code == 3 and "Crash" in r.err, (n, r)
        assert len(calls) == n + 1
        report = project.verify()
        assert report.exit_code == 1, (n, calls[-1], report.findings)
        failing = {f.tier for f in report.findings if report.is_failing(f)}
        assert failing & {"a", "b"}, (n, report.findings)
        assert _temp_files(project.root) == []
        # Running sign again recovers.
        r = sign(project, project.signer("alice"))
        assert r.code == 0, r.err
        assert project.verify().exit_code == 0, project.verify().findings
        project.commit()


def test_crash_inside_the_rename_leaves_no_temp_file(
    project: Protected, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign(project, project.signer("alice"))
    project.commit()
    (project.root / "a/x.py").write_text("x = 'unsigned'\n")
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if str(dst).endswith(".dsse.json"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)  # the os module guard.fsutil uses
    r = sign(project, project.signer("alice"))
    monkeypatch.undo()
    assert r.code == 3
    assert _temp_files(project.root) == []
    report = project.verify()
    assert report.exit_code == 1
    assert "QG-SIG-BINDING" in {f.rule for f in report.findings}
    assert sign(project, project.signer("alice")).code == 0
    assert project.verify().exit_code == 0


def test_ctrl_c_during_sign_is_130(project: Protected, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(path: Path, data: bytes, **kw: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(qeguard.integrity.sign, "atomic_write", interrupted)
    r = sign(project, project.signer("alice"))
    assert r.code == 130 and "interrupted" in r.err
