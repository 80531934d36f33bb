"""Ed25519 keys in OpenSSH formats: generating, loading, signing, verifying.

Two signature forms are accepted over the DSSE PAE bytes:
- raw Ed25519 (64 bytes), made by qeguard itself;
- SSHSIG blobs from `ssh-keygen -Y sign -n qeguard`, so keys in ssh-agent or on
  hardware tokens can sign without qeguard ever seeing the private key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import struct
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from qeguard.errors import KeyFileError, UsageError

if TYPE_CHECKING:
    from qeguard.git import GitRepo

SSHSIG_NAMESPACE = "qeguard"
PASSPHRASE_ENV = "QEGUARD_KEY_PASSPHRASE"

# A signer name becomes a file name in the keys folder and a key comment: one plain
# path component, so `--name ../x` cannot write outside the folder.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def check_key_name(name: str) -> str:
    """`name` when it is a valid signer/key name, else a UsageError saying what is allowed."""
    if _NAME.fullmatch(name) is None or name.endswith(".pub"):
        raise UsageError(
            f"{name!r} is not a valid key name",
            where="--name",
            hint="use 1-64 letters, digits and . _ @ - (starting with a letter or digit, "
            "not ending in .pub), e.g. --name alice",
        )
    return name


@dataclass(frozen=True, kw_only=True, slots=True)
class PublicKey:
    """A trusted Ed25519 public key, from an OpenSSH `ssh-ed25519 AAAA... comment` line."""

    raw: bytes  # 32 bytes
    comment: str = ""

    @property
    def wire(self) -> bytes:
        """The SSH wire encoding (what OpenSSH fingerprints)."""
        return _ssh_string(b"ssh-ed25519") + _ssh_string(self.raw)

    @property
    def keyid(self) -> str:
        """OpenSSH's fingerprint form, so `ssh-keygen -lf key.pub` shows the same id."""
        digest = hashlib.sha256(self.wire).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    @property
    def openssh(self) -> str:
        line = "ssh-ed25519 " + base64.b64encode(self.wire).decode("ascii")
        return f"{line} {self.comment}" if self.comment else line

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when `signature` (raw Ed25519 or an SSHSIG blob) by this key covers `message`."""
        key = Ed25519PublicKey.from_public_bytes(self.raw)
        if signature.startswith(b"SSHSIG"):
            return _verify_sshsig(self, signature, message)
        if len(signature) != 64:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def parse(cls, line: str, *, where: str) -> PublicKey:
        parts = line.strip().split(None, 2)
        if len(parts) >= 1 and parts[0] != "ssh-ed25519":
            raise unsupported_key(parts[0], where=where)
        if len(parts) < 2:
            raise KeyFileError(
                "expected an OpenSSH Ed25519 public key line (`ssh-ed25519 AAAA... name`)",
                where=where,
                hint="qeguard keygen prints one; `ssh-keygen -t ed25519` makes one too",
            )
        try:
            wire = _b64decode_canonical(parts[1])
            kind, rest = _read_string(wire)
            raw, rest = _read_string(rest)
        except (ValueError, struct.error):
            raise KeyFileError("the key's base64 body is damaged", where=where) from None
        if kind != b"ssh-ed25519":
            # The line's label and the body's type must agree; name what the body holds.
            raise unsupported_key(kind.decode("ascii", "replace"), where=where, label=parts[0])
        if len(raw) != 32 or rest:
            raise KeyFileError("the key body is not an Ed25519 key", where=where)
        return cls(raw=raw, comment=parts[2].strip() if len(parts) > 2 else "")


# OpenSSH key types qeguard does not accept, by what a user would call them.
_KEY_TYPES = {
    "ssh-rsa": "RSA",
    "rsa-sha2-256": "RSA",
    "rsa-sha2-512": "RSA",
    "ssh-dss": "DSA",
    "ecdsa-sha2-nistp256": "ECDSA (P-256)",
    "ecdsa-sha2-nistp384": "ECDSA (P-384)",
    "ecdsa-sha2-nistp521": "ECDSA (P-521)",
    "sk-ssh-ed25519@openssh.com": "FIDO security-key Ed25519",
    "sk-ecdsa-sha2-nistp256@openssh.com": "FIDO security-key ECDSA",
    "ssh-ed25519-cert-v01@openssh.com": "Ed25519 certificate",
}


def key_type_name(kind: str) -> str:
    """What a user calls an OpenSSH key type (`ssh-rsa` -> "RSA")."""
    if kind in _KEY_TYPES:
        return _KEY_TYPES[kind]
    if kind.endswith("-cert-v01@openssh.com"):
        return "OpenSSH certificate"
    return "unknown"


def unsupported_key(kind: str, *, where: str, label: str | None = None) -> KeyFileError:
    """The error for a key that is not plain Ed25519, naming its type."""
    shown = kind if len(kind) <= 64 else kind[:61] + "..."
    name = key_type_name(kind)
    what = f"{shown} ({name})" if name != "unknown" else repr(shown)
    if label is not None and label == "ssh-ed25519":
        message = f"the line says ssh-ed25519 but its body holds a {what} key"
    elif name == "unknown":
        message = (
            "expected an OpenSSH Ed25519 public key line (`ssh-ed25519 AAAA... name`), "
            f"found {what}"
        )
    else:
        message = f"key type {what} is not supported; qeguard accepts ssh-ed25519 keys only"
    if kind.startswith("sk-"):
        hint = (
            "a security-key signature also covers the token's flags and counter, which "
            "qeguard does not verify; use an ssh-ed25519 key (it may live in ssh-agent: "
            "sign with --ssh)"
        )
    else:
        hint = "create one with `qeguard keygen` or `ssh-keygen -t ed25519`"
    return KeyFileError(message, where=where, hint=hint)


def _b64decode_canonical(text: str) -> bytes:
    """Standard, padded base64 and only its canonical form (ValueError otherwise), so one
    key has one text and junk characters are never dropped."""
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key that can sign, loaded from a file or backed by ssh-keygen/ssh-agent."""

    public: PublicKey
    _private: Ed25519PrivateKey | None
    _ssh_keyfile: Path | None = None

    def sign(self, message: bytes) -> bytes:
        if self._private is not None:
            return self._private.sign(message)
        assert self._ssh_keyfile is not None
        return ssh_keygen_sign(self._ssh_keyfile, message)


def generate(comment: str, passphrase: bytes | None) -> tuple[bytes, str]:
    """A new key: (OpenSSH private key file bytes, public key line)."""
    from cryptography.hazmat.primitives import serialization  # only to write or read keys

    private = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
    )
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return pem, PublicKey(raw=raw, comment=comment).openssh


def load_signing_key(
    path: Path,
    *,
    passphrase: bytes | None = None,
    use_ssh_keygen: bool = False,
    prompt: Callable[[], bytes] | None = None,
) -> SigningKey:
    """Load an OpenSSH (or PKCS#8 PEM) Ed25519 private key.

    With `use_ssh_keygen`, `path` may be a public key whose private half lives in
    ssh-agent or on a token; signing is then done by `ssh-keygen -Y sign`. `prompt` asks
    for the passphrase of an encrypted key when neither `passphrase` nor the environment
    gives one (the CLI passes it only when someone is at a terminal).
    """
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(
            f"cannot read the key: {exc.strerror}",
            where=where,
            hint="check the path given to --key",
        ) from None
    if use_ssh_keygen:
        pub_path = path if data.startswith(b"ssh-ed25519") else path.with_name(path.name + ".pub")
        try:
            public = PublicKey.parse(pub_path.read_text(encoding="utf-8"), where=str(pub_path))
        except OSError:
            raise KeyFileError(
                "ssh signing needs the public key beside the private one", where=str(pub_path)
            ) from None
        return SigningKey(public, None, path)
    if data.lstrip().startswith(b"ssh-"):
        raise KeyFileError(
            "this is a public key; signing needs the private key",
            where=where,
            hint="pass the file without `.pub`, or add --ssh to sign through ssh-agent",
        )
    _warn_if_loose(path)
    if passphrase is None and os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV].encode("utf-8")
    if passphrase is None and prompt is not None and _is_encrypted(data):
        passphrase = prompt()
    # Loaded here, not at the top: the verifier (and the hook) only read public keys.
    from cryptography.hazmat.primitives import serialization

    key: object
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, passphrase)
        else:
            key = serialization.load_pem_private_key(data, passphrase)
    except TypeError:
        raise KeyFileError(
            "the key is protected by a passphrase and there is no terminal to ask for it",
            where=where,
            hint=f"set {PASSPHRASE_ENV} to the passphrase",
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "unreadable key"
        # An encrypted OpenSSH key opened with the wrong passphrase fails its check bytes
        # ("broken checksum"); PEM says "Bad decrypt. Incorrect password?".
        low = msg.lower()
        if "password" in low or "decrypt" in low or (passphrase and "checksum" in low):
            raise KeyFileError(
                "wrong passphrase", where=where, hint=f"check {PASSPHRASE_ENV}"
            ) from None
        raise KeyFileError(
            f"not an OpenSSH Ed25519 private key ({msg})",
            where=where,
            hint="create one with `qeguard keygen`",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"only Ed25519 keys are supported (this is {_private_key_name(key)})",
            where=where,
            hint="create one with `qeguard keygen`",
        )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(PublicKey(raw=raw, comment=path.stem), key)


def _is_encrypted(data: bytes) -> bool:
    """Whether a private key file needs a passphrase (without trying one)."""
    if b"OPENSSH PRIVATE KEY" in data:
        try:
            body = base64.b64decode(b"".join(data.strip().splitlines()[1:-1]))
        except ValueError:
            return False
        # openssh-key-v1: magic, then the cipher name ("none" when unencrypted).
        magic = b"openssh-key-v1\0"
        if not body.startswith(magic):
            return False
        try:
            cipher, _ = _read_string(body[len(magic) :])
        except (ValueError, struct.error):
            return False
        return cipher != b"none"
    return b"ENCRYPTED" in data


# What a private key file starts with (OpenSSH, PKCS#8, PKCS#1, SEC1); public lines never do.
_PRIVATE_HEADER = re.compile(rb"-----BEGIN (?:OPENSSH |ENCRYPTED |RSA |EC |DSA )?PRIVATE KEY-----")
_KEY_SUFFIXES = (".key", ".pem", ".priv")


def private_key_files(root: Path, paths: Iterable[str]) -> list[str]:
    """The paths (POSIX, from `root`) that hold a private key: names keygen and ssh-keygen
    write (a file beside its `.pub`, `*.key`, `*.pem`, `id_*`), confirmed by the first
    bytes. Only such names are opened, so a large tree costs no reads."""
    listed = set(paths)
    found: list[str] = []
    for rel in sorted(listed):
        name = rel.rsplit("/", 1)[-1]
        if name.endswith(".pub"):
            continue
        if not (f"{rel}.pub" in listed or name.endswith(_KEY_SUFFIXES) or name.startswith("id_")):
            continue
        try:
            with (root / rel).open("rb") as f:
                head = f.read(128)
        except OSError:
            continue
        if _PRIVATE_HEADER.search(head):
            found.append(rel)
    return found


def exposed_private_keys(
    repo: GitRepo, candidates: Iterable[str] | None = None
) -> list[tuple[str, bool]]:
    """Private key files git would commit (tracked, or untracked and not ignored), each
    with whether it is tracked already. `candidates`: those paths, when a walk of the
    tree has them already (`WorkTree.walked`); else git lists them."""
    found = private_key_files(repo.root, repo.list_paths() if candidates is None else candidates)
    tracked = repo.index_entries(found) if found else {}
    return [(path, path in tracked) for path in found]


def _private_key_name(key: object) -> str:
    """The algorithm of a private key cryptography loaded: "an RSA key", "an ECDSA (P-256) key"."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        return f"an RSA key of {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an ECDSA key on {key.curve.name}"
    if isinstance(key, dsa.DSAPrivateKey):
        return "a DSA key"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "an Ed448 key"
    return f"a {type(key).__name__}"


def _warn_if_loose(path: Path) -> None:
    # Like ssh, refuse private keys others can read: a leaked signing key defeats the tiers.
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"private key permissions {mode:04o} are too open",
            where=str(path),
            hint=f"run `chmod 600 {path}`",
        )


def ssh_keygen_sign(keyfile: Path, message: bytes) -> bytes:
    """Sign with `ssh-keygen -Y sign -n qeguard` and return the SSHSIG blob (binary)."""
    import tempfile  # only to sign with ssh-keygen: not on the verifier's path

    with tempfile.TemporaryDirectory(prefix="qeguard-sign-") as tmp:
        msg = Path(tmp) / "pae"
        msg.write_bytes(message)
        try:
            subprocess.run(
                ["ssh-keygen", "-Y", "sign", "-n", SSHSIG_NAMESPACE, "-f", str(keyfile), str(msg)],
                check=True,
                capture_output=True,
            )
        except FileNotFoundError:
            raise KeyFileError("ssh-keygen is not installed", where=str(keyfile)) from None
        except subprocess.CalledProcessError as exc:
            raise KeyFileError(
                f"ssh-keygen could not sign: {exc.stderr.decode(errors='replace').strip()}",
                where=str(keyfile),
            ) from None
        return armored_sshsig_to_blob((Path(tmp) / "pae.sig").read_text(encoding="ascii"))


def armored_sshsig_to_blob(armored: str) -> bytes:
    lines = [ln.strip() for ln in armored.strip().splitlines()]
    if not lines or lines[0] != "-----BEGIN SSH SIGNATURE-----":
        raise KeyFileError("not an SSH signature (-----BEGIN SSH SIGNATURE-----)")
    body = "".join(ln for ln in lines[1:] if not ln.startswith("-----"))
    try:
        return _b64decode_canonical(body)
    except (ValueError, UnicodeEncodeError):
        raise KeyFileError("the SSH signature's base64 body is damaged") from None


def signature_key_type(signature: bytes) -> str | None:
    """The key type of an SSHSIG signature made with a key qeguard does not accept
    (`sk-ssh-ed25519@openssh.com`, `ssh-rsa`, ...), for messages; None otherwise."""
    if not signature.startswith(b"SSHSIG"):
        return None
    try:
        rest = signature[10:]  # magic and version
        for _ in range(4):  # public key, namespace, reserved, hash algorithm
            _, rest = _read_string(rest)
        sig_blob, _ = _read_string(rest)
        kind, _ = _read_string(sig_blob)
    except (ValueError, struct.error):
        return None
    name = kind.decode("ascii", "replace")
    return None if name == "ssh-ed25519" else f"{name} ({key_type_name(name)})"


def _verify_sshsig(key: PublicKey, blob: bytes, message: bytes) -> bool:
    """Verify an SSHSIG blob (OpenSSH PROTOCOL.sshsig) made by `key` in our namespace."""
    try:
        rest = blob[6:]
        (version,) = struct.unpack(">I", rest[:4])
        rest = rest[4:]
        pub, rest = _read_string(rest)
        namespace, rest = _read_string(rest)
        reserved, rest = _read_string(rest)
        hash_alg, rest = _read_string(rest)
        sig_blob, rest = _read_string(rest)
        sig_kind, sig_rest = _read_string(sig_blob)
        raw_sig, _ = _read_string(sig_rest)
    except (ValueError, struct.error):
        return False
    if version != 1 or rest or pub != key.wire or namespace != SSHSIG_NAMESPACE.encode():
        return False
    if sig_kind != b"ssh-ed25519" or len(raw_sig) != 64:
        return False
    if hash_alg == b"sha512":
        digest = hashlib.sha512(message).digest()
    elif hash_alg == b"sha256":
        digest = hashlib.sha256(message).digest()
    else:
        return False
    signed = (
        b"SSHSIG"
        + _ssh_string(namespace)
        + _ssh_string(reserved)
        + _ssh_string(hash_alg)
        + _ssh_string(digest)
    )
    try:
        Ed25519PublicKey.from_public_bytes(key.raw).verify(raw_sig, signed)
    except InvalidSignature:
        return False
    return True


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _read_string(data: bytes) -> tuple[bytes, bytes]:
    (n,) = struct.unpack(">I", data[:4])
    if n > len(data) - 4:
        raise ValueError("truncated")
    return data[4 : 4 + n], data[4 + n :]
