"""Keys: qeguard's own, OpenSSH's (ssh-keygen), passphrases, SSHSIG signatures."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from qeguard.errors import KeyFileError
from qeguard.integrity.dsse import PAYLOAD_TYPE, pae
from qeguard.integrity.keys import PublicKey, armored_sshsig_to_blob, generate, load_signing_key

needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed"
)
MESSAGE = pae(PAYLOAD_TYPE, b'{"tier":"core"}')


def ssh_keygen(folder: Path, name: str, *, kind: str = "ed25519", passphrase: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def ssh_sign(key: Path, message: bytes, folder: Path, namespace: str = "qeguard") -> bytes:
    msg = folder / "message"
    msg.write_bytes(message)
    sig = folder / "message.sig"
    sig.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", namespace, "-f", str(key), str(msg)],
        check=True,
        capture_output=True,
    )
    return armored_sshsig_to_blob(sig.read_text())


def test_generate_load_sign_verify(keypair: Any) -> None:
    kp = keypair("alice")
    assert stat.S_IMODE(kp.private.stat().st_mode) == 0o600
    key = load_signing_key(kp.private)
    assert key.public == PublicKey.parse(kp.line, where="x")
    assert key.public.comment == "alice" and kp.line.endswith(" alice")
    sig = key.sign(MESSAGE)
    assert len(sig) == 64 and key.public.verify(sig, MESSAGE)
    assert not key.public.verify(sig, MESSAGE + b"x")
    assert not key.public.verify(sig[:-1], MESSAGE)
    other = load_signing_key(keypair("bob").private)
    assert not other.public.verify(sig, MESSAGE)


@needs_ssh_keygen
def test_keyid_is_the_openssh_fingerprint(keypair: Any) -> None:
    kp = keypair("alice")
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(kp.public)], check=True, capture_output=True, text=True
    ).stdout
    assert load_signing_key(kp.private).public.keyid == out.split()[1]


def test_passphrase_key(keypair: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    kp = keypair("alice", passphrase=b"secret")
    with pytest.raises(KeyFileError, match="protected by a passphrase") as info:
        load_signing_key(kp.private)
    assert "QEGUARD_KEY_PASSPHRASE" in info.value.diagnostics()
    monkeypatch.setenv("QEGUARD_KEY_PASSPHRASE", "wrong")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_signing_key(kp.private)
    monkeypatch.setenv("QEGUARD_KEY_PASSPHRASE", "secret")
    assert load_signing_key(kp.private).public.openssh == kp.line


@needs_ssh_keygen
def test_openssh_keys_from_ssh_keygen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = ssh_keygen(tmp_path / "ssh", "id_ed25519")
    key = load_signing_key(plain)
    assert key.public.raw == PublicKey.parse(Path(f"{plain}.pub").read_text(), where="p").raw
    locked = ssh_keygen(tmp_path / "ssh", "locked", passphrase="secret")
    with pytest.raises(KeyFileError, match="passphrase"):
        load_signing_key(locked)
    monkeypatch.setenv("QEGUARD_KEY_PASSPHRASE", "wrong")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_signing_key(locked)
    monkeypatch.setenv("QEGUARD_KEY_PASSPHRASE", "secret")
    unlocked = load_signing_key(locked)
    assert unlocked.public.verify(unlocked.sign(MESSAGE), MESSAGE)


@needs_ssh_keygen
@pytest.mark.parametrize(
    ("kind", "private_name", "public_name"),
    [
        ("ecdsa", "an ECDSA key on secp256r1", "ecdsa-sha2-nistp256 (ECDSA (P-256))"),
        ("rsa", "an RSA key of", "ssh-rsa (RSA)"),
    ],
)
def test_non_ed25519_keys_are_refused_by_name(
    tmp_path: Path, kind: str, private_name: str, public_name: str
) -> None:
    key = ssh_keygen(tmp_path, kind, kind=kind)
    with pytest.raises(KeyFileError, match="only Ed25519") as info:
        load_signing_key(key)
    assert str(key) in info.value.diagnostics() and private_name in info.value.diagnostics()
    with pytest.raises(KeyFileError) as info:
        PublicKey.parse(Path(f"{key}.pub").read_text(), where=f"{kind}.pub")
    diag = info.value.diagnostics()
    assert f"key type {public_name} is not supported" in diag and "ssh-ed25519" in diag


def _wire(*parts: bytes) -> str:
    return base64.b64encode(b"".join(len(p).to_bytes(4, "big") + p for p in parts)).decode()


def test_security_key_types_are_named_with_why() -> None:
    # What `ssh-keygen -t ed25519-sk` writes: the body holds the key and the application.
    line = "sk-ssh-ed25519@openssh.com " + _wire(
        b"sk-ssh-ed25519@openssh.com", b"\x01" * 32, b"ssh:"
    )
    with pytest.raises(KeyFileError) as info:
        PublicKey.parse(line + " yubikey", where="sk.pub")
    diag = info.value.diagnostics()
    assert "sk-ssh-ed25519@openssh.com (FIDO security-key Ed25519) is not supported" in diag
    assert "flags and counter" in diag


def test_a_body_of_another_type_under_an_ed25519_label_is_named() -> None:
    line = "ssh-ed25519 " + _wire(b"ssh-rsa", b"\x01\x00\x01", b"\x00" * 64)
    with pytest.raises(KeyFileError, match="says ssh-ed25519 but its body holds a ssh-rsa"):
        PublicKey.parse(line, where="k.pub")


@pytest.mark.parametrize(
    "edit",
    [
        lambda b64: b64[:-2] + "!" + b64[-1],  # a character outside the alphabet
        lambda b64: b64[:10] + " " + b64[10:],  # white space inside
        lambda b64: b64 + "==",  # padding where none belongs (51 bytes need none)
        lambda b64: b64.replace("A", "-", 1) if "A" in b64 else "-" + b64,  # URL-safe mix
    ],
)
def test_public_key_base64_must_be_canonical(keypair: Any, edit: Any) -> None:
    kind, b64 = keypair("alice").line.split()[:2]
    PublicKey.parse(f"{kind} {b64}", where="k")  # the key itself is fine
    with pytest.raises(KeyFileError, match="base64 body is damaged"):
        PublicKey.parse(f"{kind} {edit(b64)}", where="k")


def test_loose_permissions_refused(keypair: Any) -> None:
    kp = keypair("alice")
    os.chmod(kp.private, 0o644)
    with pytest.raises(KeyFileError) as info:
        load_signing_key(kp.private)
    diag = info.value.diagnostics()
    assert "0644 are too open" in diag and f"chmod 600 {kp.private}" in diag


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "cannot read the key"),
        (b"ssh-ed25519 AAAA x\n", "this is a public key"),
        (b"garbage", "not an OpenSSH Ed25519 private key"),
        (
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            "not an OpenSSH Ed25519 private key",
        ),
    ],
)
def test_unreadable_keys(tmp_path: Path, content: bytes | None, needle: str) -> None:
    path = tmp_path / "key"
    if content is not None:
        path.write_bytes(content)
        os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match=needle) as info:
        load_signing_key(path)
    assert str(path) in info.value.diagnostics()


@pytest.mark.parametrize(
    "line",
    [
        "",
        "ssh-ed25519",
        "ssh-rsa AAAA",
        "ssh-ed25519 not*base64",
        # a valid base64 body that encodes an RSA key type
        "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQ==",
    ],
)
def test_public_key_parse_errors(line: str) -> None:
    with pytest.raises(KeyFileError) as info:
        PublicKey.parse(line, where="trust.toml: signers[0].key")
    assert "signers[0].key" in info.value.diagnostics()


def test_public_key_line_round_trip() -> None:
    _, line = generate("carol the signer", None)
    key = PublicKey.parse(line, where="x")
    assert key.comment == "carol the signer" and key.openssh == line


@needs_ssh_keygen
def test_sshsig_from_real_ssh_keygen_verifies(tmp_path: Path) -> None:
    key_file = ssh_keygen(tmp_path / "ssh", "id_ed25519")
    public = PublicKey.parse(Path(f"{key_file}.pub").read_text(), where="pub")
    blob = ssh_sign(key_file, MESSAGE, tmp_path)
    assert blob.startswith(b"SSHSIG")
    assert public.verify(blob, MESSAGE)
    assert not public.verify(blob, MESSAGE + b" ")
    other = ssh_keygen(tmp_path / "ssh", "other")
    assert not PublicKey.parse(Path(f"{other}.pub").read_text(), where="o").verify(blob, MESSAGE)
    # Signed for another purpose (namespace): must not be replayable as a manifest signature.
    assert not public.verify(ssh_sign(key_file, MESSAGE, tmp_path, "git"), MESSAGE)
    for i in (10, len(blob) // 2, len(blob) - 1):
        bad = bytearray(blob)
        bad[i] ^= 1
        assert not public.verify(bytes(bad), MESSAGE)
    assert not public.verify(blob[:-5], MESSAGE)
    assert not public.verify(b"SSHSIG", MESSAGE)


@needs_ssh_keygen
def test_ssh_keygen_signing_backend(tmp_path: Path) -> None:
    key_file = ssh_keygen(tmp_path / "ssh", "id_ed25519")
    for path in (key_file, Path(f"{key_file}.pub")):
        key = load_signing_key(path, use_ssh_keygen=True)
        sig = key.sign(MESSAGE)
        assert sig.startswith(b"SSHSIG") and key.public.verify(sig, MESSAGE)


@needs_ssh_keygen
def test_ssh_keygen_verifies_what_qeguard_had_signed(tmp_path: Path) -> None:
    # The other direction: the SSHSIG qeguard obtains is exactly what OpenSSH verifies.
    key_file = ssh_keygen(tmp_path / "ssh", "id_ed25519")
    key = load_signing_key(key_file, use_ssh_keygen=True)
    blob = key.sign(MESSAGE)
    body = base64.b64encode(blob).decode()
    armored = (
        "-----BEGIN SSH SIGNATURE-----\n"
        + "\n".join(body[i : i + 70] for i in range(0, len(body), 70))
        + "\n-----END SSH SIGNATURE-----\n"
    )
    (tmp_path / "sig").write_text(armored)
    (tmp_path / "allowed").write_text(f"signer {key.public.openssh}\n")
    proc = subprocess.run(
        [
            "ssh-keygen",
            "-Y",
            "verify",
            "-f",
            str(tmp_path / "allowed"),
            "-I",
            "signer",
            "-n",
            "qeguard",
            "-s",
            str(tmp_path / "sig"),
        ],
        input=MESSAGE,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_ssh_backend_needs_the_public_key(tmp_path: Path, keypair: Any) -> None:
    kp = keypair("alice")
    kp.public.unlink()
    with pytest.raises(KeyFileError, match="public key beside"):
        load_signing_key(kp.private, use_ssh_keygen=True)


def test_armored_signature_errors() -> None:
    with pytest.raises(KeyFileError, match="not an SSH signature"):
        armored_sshsig_to_blob("hello")


# keygen command


def test_keygen_default_location_is_outside_the_repo(repo: Path, run_cli: Any, chdir: Any) -> None:
    chdir(repo)
    r = run_cli("keygen", "--name", "alice")
    assert r.code == 0, r.err
    line = r.out.strip()
    assert line.startswith("ssh-ed25519 ") and line.endswith(" alice")
    private = Path(os.environ["XDG_CONFIG_HOME"]) / "qeguard" / "keys" / "alice"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert Path(f"{private}.pub").read_text().strip() == line
    assert not any(p.name.startswith("alice") for p in repo.rglob("*"))
    # `sign` finds the only key there by itself.
    from qeguard.cli.commands.sign import _default_key

    assert _default_key() == private


def test_keygen_out_and_refuses_overwrite(tmp_path: Path, run_cli: Any) -> None:
    old = os.umask(0)  # the most permissive umask must still give 0600
    try:
        r = run_cli("keygen", "--name", "bob", "--out", tmp_path / "bob.key")
    finally:
        os.umask(old)
    assert r.code == 0, r.err
    assert stat.S_IMODE((tmp_path / "bob.key").stat().st_mode) == 0o600
    assert load_signing_key(tmp_path / "bob.key").public.openssh == r.out.strip()
    r = run_cli("keygen", "--name", "bob", "--out", tmp_path / "bob.key")
    assert r.code == 2 and "exists" in r.err
    assert run_cli("keygen", "--name", "bob", "--out", tmp_path / "bob.key", "--force").code == 0
    r = run_cli("keygen")
    assert r.code == 2 and "--name" in r.err


def test_keygen_passphrase_from_env(
    tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QEGUARD_KEY_PASSPHRASE", "pw")
    r = run_cli("keygen", "--name", "c", "--out", tmp_path / "c", "--passphrase")
    assert r.code == 0, r.err
    assert load_signing_key(tmp_path / "c").public.openssh == r.out.strip()
    monkeypatch.delenv("QEGUARD_KEY_PASSPHRASE")
    with pytest.raises(KeyFileError, match="passphrase"):
        load_signing_key(tmp_path / "c")


@needs_ssh_keygen
def test_keygen_reads_existing_openssh_key(tmp_path: Path, run_cli: Any) -> None:
    key_file = ssh_keygen(tmp_path / "ssh", "id_ed25519")
    r = run_cli("keygen", "--key", key_file)
    assert r.code == 0
    assert r.out.split()[:2] == Path(f"{key_file}.pub").read_text().split()[:2]


def test_keygen_loose_key_is_exit_2(keypair: Any, run_cli: Any) -> None:
    kp = keypair("alice")
    os.chmod(kp.private, 0o644)
    r = run_cli("keygen", "--key", kp.private)
    assert r.code == 2 and "too open" in r.err and "Traceback" not in r.err


# --- names, folders, keys in a work tree --------------------------------------------------


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "-x", "alice.pub", "a" * 65])
def test_keygen_refuses_names_that_are_not_one_file_name(
    name: str, run_cli: Any, tmp_path: Path
) -> None:
    r = run_cli("keygen", f"--name={name}")
    assert r.code == 2 and "not a valid key name" in r.err and "Traceback" not in r.err
    keys = Path(os.environ["XDG_CONFIG_HOME"]) / "qeguard"
    assert not keys.exists() or not any(p.is_file() for p in keys.parent.rglob("*evil*"))
    assert not (tmp_path / "evil").exists()


def test_keygen_keys_folder_is_private(run_cli: Any) -> None:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "qeguard" / "keys"
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)  # left by an earlier version
    assert run_cli("keygen", "--name", "alice").code == 0
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_keygen_inside_a_work_tree_refuses_unless_ignored_or_forced(
    repo: Path, run_cli: Any, chdir: Any
) -> None:
    chdir(repo)
    r = run_cli("keygen", "--name", "alice", "--out", "keys/alice.key")
    assert r.code == 2 and "inside the git work tree" in r.err
    assert not Path("keys").exists()
    r = run_cli("keygen", "--name", "alice", "--out", "keys/alice.key", "--force")
    assert r.code == 0 and "warning:" in r.err and "git add -A" in r.err
    (repo / ".gitignore").write_text("*.key\n")
    r = run_cli("keygen", "--name", "bob", "--out", "bob.key")
    assert r.code == 0 and "warning" not in r.err


def test_sign_and_status_warn_about_private_keys_in_the_tree(
    repo: Path, keypair: Any, run_cli: Any
) -> None:
    from helpers import git_run, protect

    p = protect(repo, keypair("alice"), keypair("bob"))
    private, line = generate("carol", None)
    (repo / "carol").write_bytes(private)  # beside its .pub, as keygen writes them
    (repo / "carol.pub").write_text(line + "\n")
    (repo / "deploy.pem").write_bytes(private)
    git_run(repo, "add", "deploy.pem")
    (repo / "notes.key").write_text("not a key at all\n")  # a key-like name, no key inside
    r = p.cli("sign", "--key", p.signer("alice").private, "--tier", "core")
    assert "private key carol is in the work tree and not ignored" in r.err
    assert "private key deploy.pem is tracked by git" in r.err
    assert "rm --cached -- deploy.pem" in r.err and "notes.key" not in r.err
    r = run_cli("status", "--format", "json", cwd=repo)
    problems = r.json()["problems"]
    assert any("carol is in the work tree" in x for x in problems)
    assert any("deploy.pem is tracked" in x for x in problems) and r.code == 1


# --- passphrases: a real pseudo-terminal, no mocks ------------------------------------------


def _console_script() -> str:
    import sys

    script = Path(sys.executable).with_name("qeguard")
    assert script.is_file(), "the qeguard console script is not installed"
    return str(script)


def on_terminal(
    args: list[str], answers: list[tuple[str, str]], *, cwd: Path, timeout: float = 30
) -> tuple[int, str]:
    """Run qeguard with a pseudo-terminal as its controlling terminal (as a person at a
    shell would), typing each answer when its prompt appears. Exit code and all output."""
    import pty
    import select
    import time

    env = {k: v for k, v in os.environ.items() if k != "QEGUARD_KEY_PASSPHRASE"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        try:
            os.chdir(cwd)
            os.execve(_console_script(), ["qeguard", *args], env)
        finally:
            os._exit(127)
    output = b""
    seen = 0  # where the next prompt is searched from
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and pending[0][0].encode() in output[seen:]:
                seen = output.index(pending[0][0].encode(), seen) + len(pending[0][0])
                os.write(fd, pending.pop(0)[1].encode() + b"\n")
        else:
            os.kill(pid, 9)
            raise AssertionError(f"timed out; output so far: {output!r}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")


def test_keygen_on_a_terminal_asks_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "alice"
    code, out = on_terminal(
        ["keygen", "--name", "alice", "--out", str(key)],
        [("passphrase for the new key:", "s3cret"), ("the same passphrase again:", "s3cret")],
        cwd=tmp_path,
    )
    assert code == 0, out
    assert "s3cret" not in out  # never echoed
    assert "encrypted" in out
    with pytest.raises(KeyFileError):
        load_signing_key(key)
    assert load_signing_key(key, passphrase=b"s3cret").public.comment == "alice"


@pytest.mark.parametrize(
    ("answers", "needle"),
    [
        ([("new key:", "one"), ("again:", "two")], "the two passphrases differ"),
        ([("new key:", "")], "--no-passphrase"),
    ],
)
def test_keygen_on_a_terminal_refuses_mismatch_and_empty(
    tmp_path: Path, answers: list[tuple[str, str]], needle: str
) -> None:
    code, out = on_terminal(
        ["keygen", "--name", "a", "--out", str(tmp_path / "a")], answers, cwd=tmp_path
    )
    assert code == 2 and needle in out and "Traceback" not in out
    assert not (tmp_path / "a").exists()


def test_keygen_no_passphrase_on_a_terminal_asks_nothing(tmp_path: Path) -> None:
    code, out = on_terminal(
        ["keygen", "--name", "a", "--out", str(tmp_path / "a"), "--no-passphrase"],
        [],
        cwd=tmp_path,
    )
    assert code == 0 and "passphrase for" not in out
    assert load_signing_key(tmp_path / "a").public.comment == "a"


def test_keygen_passphrase_without_a_terminal_is_exit_2(tmp_path: Path, run_cli: Any) -> None:
    r = run_cli("keygen", "--name", "a", "--out", tmp_path / "a", "--passphrase")
    assert r.code == 2 and "no terminal" in r.err and "QEGUARD_KEY_PASSPHRASE" in r.err
    assert "Traceback" not in r.err and not (tmp_path / "a").exists()
    # Without --passphrase a script gets an unencrypted key, and is told so.
    r = run_cli("keygen", "--name", "b", "--out", tmp_path / "b")
    assert r.code == 0 and "unencrypted" in r.err


def test_sign_asks_for_the_passphrase_on_a_terminal(repo: Path, keypair: Any) -> None:
    from helpers import Protected

    alice = keypair("alice", b"pw-alice")
    bob = keypair("bob")
    p = Protected.build(repo, [bob], sign=False, commit=False)
    p.ok("trust", "add", "alice", alice.public, "--tiers", "core,middle")
    p.sign(bob)
    code, out = on_terminal(
        ["-C", str(repo), "sign", "--key", str(alice.private)],
        [(f"passphrase for {alice.private}:", "pw-alice")],
        cwd=repo,
    )
    assert code == 0, out
    assert "core: co-signed" in out
    assert sorted(p.verify().tiers[0].signers) == ["alice", "bob"]
    # Without a terminal: exit 2, naming the variable that gives the passphrase.
    r = p.cli("sign", "--key", alice.private)
    assert r.code == 2 and "no terminal" in r.err and "QEGUARD_KEY_PASSPHRASE" in r.err
