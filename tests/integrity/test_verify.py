"""Verification end to end in real git repositories, one test per kind of tampering."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import KeyPair, Protected
from qeguard.fsutil import atomic_write
from qeguard.integrity.checks.entries import compare
from qeguard.integrity.dsse import PAYLOAD_TYPE, Envelope, Signature
from qeguard.integrity.keys import SigningKey, load_signing_key
from qeguard.integrity.layout import envelope_path, list_path
from qeguard.integrity.manifest import MODE_FILE, Entry, Kind, format_list, new_payload, parse_list
from qeguard.integrity.policy import parse_policy
from qeguard.integrity.trees.base import Observed, Seen
from qeguard.report import Finding, Report, Severity

FILES: dict[str, str | bytes] = {
    "pyproject.toml": "[project]\nname = 'demo'\n",
    "src/demo/__init__.py": "VERSION = 1\n",
    "src/demo/core/engine.py": "def run():\n    return 1\n",
    "src/demo/util.py": "def helper():\n    return 2\n",
    "scripts/build.sh": "#!/bin/sh\necho build\n",
    "docs/index.md": "# Docs\n",
    "README.md": "# Demo\n",
    "data/ignored.csv": "a,b\n",
}


def signing_key(who: KeyPair) -> SigningKey:
    return load_signing_key(who.private)


@pytest.fixture
def signed(repo: Path, keypair: Any) -> Protected:
    """A committed repository signed by alice and bob under the qemlflow preset, with an
    executable script, a symlink and an ignored folder."""
    p = Protected.build(
        repo,
        [keypair("alice"), keypair("bob")],
        files={**FILES, ".gitignore": "data/\n"},
        sign=False,
        commit=False,
    )
    os.chmod(repo / "scripts/build.sh", 0o755)
    os.symlink("util.py", repo / "src/demo/link.py")
    p.sign()
    p.commit("protect")
    return p


def rules(report: Report) -> set[str]:
    return {f.rule for f in report.findings}


def only(report: Report, rule: str) -> Finding:
    found = [f for f in report.findings if f.rule == rule]
    assert len(found) == 1, report.findings
    return found[0]


def test_clean_tree_verifies(signed: Protected) -> None:
    report = signed.verify()
    assert report.findings == (), report.findings
    assert report.exit_code == 0
    tiers = {t.name: t for t in report.tiers}
    assert sorted(tiers["core"].signers) == ["alice", "bob"]
    # .qeguard/policy.toml and trust.toml are protected by the strictest tier.
    core = parse_list((signed.root / list_path("core")).read_bytes(), source="core")
    assert {".qeguard/policy.toml", ".qeguard/trust.toml"} <= {e.path for e in core}
    assert not any(
        e.path.startswith("data/")
        for t in ("core", "middle", "outer")
        for e in parse_list((signed.root / list_path(t)).read_bytes(), source=t)
    )
    root = signed.git("rev-list", "--max-parents=0", "HEAD").strip()
    assert report.trust_source is not None
    assert report.trust_source.startswith(f"trust root {root} (first commit with .qeguard/")


def test_modified_content(signed: Protected) -> None:
    (signed.root / "src/demo/util.py").write_text("def helper():\n    return 3\n")
    report = signed.verify()
    f = only(report, "QG-INT-MODIFIED")
    assert f.location is not None and f.location.path == "src/demo/util.py"
    assert f.tier == "middle" and f.severity is Severity.HIGH
    assert f.fix is not None and "qeguard restore src/demo/util.py" in f.fix
    assert "qeguard sign --tier middle" in f.fix
    assert report.exit_code == 1


def test_outer_tier_change_only_warns(signed: Protected) -> None:
    (signed.root / "docs/index.md").write_text("# Changed\n")
    report = signed.verify()
    f = only(report, "QG-INT-MODIFIED")
    assert f.tier == "outer" and f.severity is Severity.LOW
    assert report.exit_code == 0


def test_missing_file(signed: Protected) -> None:
    (signed.root / "src/demo/core/engine.py").unlink()
    f = only(signed.verify(), "QG-INT-MISSING")
    assert f.location is not None and f.location.path == "src/demo/core/engine.py"
    assert f.tier == "core" and f.severity is Severity.HIGH and f.fix


def test_new_file_in_a_tier(signed: Protected) -> None:
    (signed.root / "src/demo/core/backdoor.py").write_text("import os\n")
    (signed.root / "data/still-ignored.csv").write_text("x\n")
    (signed.root / "unprotected.txt").write_text("x\n")
    report = signed.verify()
    f = only(report, "QG-INT-ADDED")
    assert f.location is not None and f.location.path == "src/demo/core/backdoor.py"
    assert f.tier == "core" and f.fix is not None and "qeguard sign --tier core" in f.fix
    assert rules(report) == {"QG-INT-ADDED"}


def test_file_replaced_by_symlink(signed: Protected) -> None:
    target = signed.root / "src/demo/util.py"
    target.unlink()
    os.symlink("/etc/passwd", target)
    f = only(signed.verify(), "QG-INT-KIND")
    assert f.location is not None and f.location.path == "src/demo/util.py"
    assert f.details == {"signed": "file", "found": "symlink"}


def test_file_replaced_by_directory(signed: Protected) -> None:
    target = signed.root / "src/demo/core/engine.py"
    target.unlink()
    target.mkdir()
    (target / "x.py").write_text("x\n")
    report = signed.verify()
    f = [x for x in report.findings if x.rule == "QG-INT-KIND"]
    assert f and f[0].details == {"signed": "file", "found": "directory"}


def test_symlink_replaced_by_file(signed: Protected) -> None:
    link = signed.root / "src/demo/link.py"
    link.unlink()
    link.write_text("def helper():\n    return 2\n")
    f = only(signed.verify(), "QG-INT-KIND")
    assert f.details == {"signed": "symlink", "found": "file"}


def test_symlink_retargeted(signed: Protected) -> None:
    link = signed.root / "src/demo/link.py"
    link.unlink()
    os.symlink("__init__.py", link)
    f = only(signed.verify(), "QG-INT-SYMLINK")
    assert f.location is not None and f.location.path == "src/demo/link.py"
    assert "__init__.py" in f.message


def test_file_behind_symlinked_folder(signed: Protected) -> None:
    # Replacing a protected folder by a symlink to a copy must not verify as the original.
    core = signed.root / "src/demo/core"
    shutil.move(str(core), str(signed.root / "elsewhere"))
    os.symlink("../../elsewhere", core)
    report = signed.verify()
    assert "QG-INT-KIND" in rules(report) or "QG-INT-MISSING" in rules(report)
    assert report.exit_code == 1


@pytest.mark.skipif(os.name != "posix", reason="exec bit is POSIX")
def test_exec_bit_changed(signed: Protected) -> None:
    os.chmod(signed.root / "scripts/build.sh", 0o644)
    f = only(signed.verify(), "QG-INT-EXEC")
    assert f.location is not None and f.location.path == "scripts/build.sh"
    assert f.fix is not None and f.fix.startswith("chmod +x scripts/build.sh")


def test_exec_bit_ignored_when_git_ignores_it(signed: Protected) -> None:
    signed.git("config", "core.fileMode", "false")
    os.chmod(signed.root / "scripts/build.sh", 0o644)
    assert signed.verify().findings == ()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(signed: Protected) -> None:
    path = signed.root / "src/demo/util.py"
    os.chmod(path, 0)
    try:
        f = only(signed.verify(), "QG-INT-UNREADABLE")
    finally:
        os.chmod(path, 0o644)
    assert f.location is not None and f.location.path == "src/demo/util.py"


def test_unreadable_is_a_finding_not_a_crash() -> None:
    # The same check without file permissions (tests may run as root).
    tier = parse_policy('extends = "qemlflow"').tier("middle")
    entry = Entry(path="a.py", sha256="0" * 64, mode=MODE_FILE, kind=Kind.FILE)
    out = compare(
        tier,
        [entry],
        [("a.py", Observed(seen=Seen.UNREADABLE, error="Permission denied"))],
        ["a.py"],
        exec_bit_meaningful=True,
    )
    assert [(f.rule, f.severity, f.location.path if f.location else None) for f in out] == [
        ("QG-INT-UNREADABLE", Severity.HIGH, "a.py")
    ]
    assert "Permission denied" in out[0].message and out[0].fix


def _resign_list(s: Protected, tier: str, entries: list[Entry]) -> None:
    """Write and validly sign (alice and bob) a hand-made list: a malicious but trusted
    signer, or a bug, could produce entries like these."""
    data = format_list(entries)
    policy = parse_policy((s.root / ".qeguard/policy.toml").read_text())
    payload = new_payload(
        tier=tier,
        sequence=5,
        list_bytes=data,
        count=len(entries),
        policy_sha256=policy.sha256,
        now=datetime.now(UTC),
        expires_days=30,
    )
    env = Envelope(payload_type=PAYLOAD_TYPE, payload=payload.to_bytes())
    for who in (s.signer("alice"), s.signer("bob")):
        k = signing_key(who)
        env = env.with_signature(Signature(keyid=k.public.keyid, sig=k.sign(env.pae)))
    atomic_write(s.root / list_path(tier), data)
    atomic_write(s.root / envelope_path(tier), env.to_bytes())


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.py", "src/../../x", ".git/config"])
def test_unsafe_entry_paths(signed: Protected, bad: str) -> None:
    (signed.root.parent / "outside.py").write_text("x\n")
    entries = parse_list((signed.root / list_path("middle")).read_bytes(), source="m")
    entries.append(
        Entry(path=bad, sha256=hashlib.sha256(b"x\n").hexdigest(), mode=MODE_FILE, kind=Kind.FILE)
    )
    _resign_list(signed, "middle", entries)
    report = signed.verify(trust_ref="HEAD")
    f = only(report, "QG-INT-PATH")
    assert f.severity is Severity.CRITICAL and f.details == {"entry": bad}
    assert report.exit_code == 1


def test_list_edited_by_hand(signed: Protected) -> None:
    path = signed.root / list_path("middle")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # drop one entry
    f = only(signed.verify(), "QG-SIG-BINDING")
    assert f.location is not None and f.location.path == list_path("middle")
    assert signed.verify().exit_code == 1


def test_envelope_malformed(signed: Protected) -> None:
    (signed.root / envelope_path("core")).write_text("{not json")
    f = only(signed.verify(), "QG-SIG-MALFORMED")
    assert f.tier == "core" and f.fix is not None and "qeguard sign --tier core" in f.fix


def test_manifest_missing(signed: Protected) -> None:
    (signed.root / envelope_path("middle")).unlink()
    f = only(signed.verify(), "QG-SIG-MISSING")
    assert f.location is not None and f.location.path == envelope_path("middle")


def _rewrite_envelope(s: Protected, tier: str, change: Callable[[Envelope], Envelope]) -> None:
    path = s.root / envelope_path(tier)
    env = Envelope.from_bytes(path.read_bytes(), source="e")
    path.write_bytes(change(env).to_bytes())


def test_wrong_payload_type(signed: Protected) -> None:
    _rewrite_envelope(
        signed,
        "core",
        lambda e: Envelope(
            payload_type="application/json", payload=e.payload, signatures=e.signatures
        ),
    )
    f = only(signed.verify(), "QG-SIG-BINDING")
    assert "payloadType" in f.message


def test_envelope_of_another_tier(signed: Protected) -> None:
    # A validly signed middle envelope copied over core must not pass as core.
    shutil.copy(signed.root / envelope_path("middle"), signed.root / envelope_path("core"))
    shutil.copy(signed.root / list_path("middle"), signed.root / list_path("core"))
    f = only(signed.verify(), "QG-SIG-BINDING")
    assert "signed for tier 'middle'" in f.message


def test_payload_byte_flip_invalidates(signed: Protected) -> None:
    def flip(e: Envelope) -> Envelope:
        body = e.payload.replace(b'"sequence":1', b'"sequence":9')
        assert body != e.payload
        return Envelope(payload_type=e.payload_type, payload=body, signatures=e.signatures)

    _rewrite_envelope(signed, "middle", flip)
    f = only(signed.verify(), "QG-SIG-THRESHOLD")
    assert f.tier == "middle" and "has 0" in f.message


def test_threshold_needs_distinct_signers(signed: Protected) -> None:
    # Drop bob's signature and add alice's again under another keyid: still one signer.
    def alice_twice(e: Envelope) -> Envelope:
        alice = signing_key(signed.signer("alice"))
        mine = [s for s in e.signatures if alice.public.verify(s.sig, e.pae)]
        return Envelope(
            payload_type=e.payload_type,
            payload=e.payload,
            signatures=(*mine, Signature(keyid="bob?", sig=alice.sign(e.pae))),
        )

    _rewrite_envelope(signed, "core", alice_twice)
    report = signed.verify()
    f = only(report, "QG-SIG-THRESHOLD")
    assert f.severity is Severity.HIGH and f.details["signers"] == ["alice"]
    assert report.exit_code == 1
    # Locally, one valid signer of two is a warning: work in progress, not an attack.
    local = signed.verify(local=True)
    assert only(local, "QG-SIG-THRESHOLD").severity is Severity.LOW
    assert local.exit_code == 0


def test_untrusted_and_wrong_tier_signers_do_not_count(
    signed: Protected, keypair: Any, run_cli: Any
) -> None:
    carol, dave = keypair("carol"), keypair("dave")
    # carol is trusted only for middle; dave not at all. The trust change itself is
    # approved by both old signers, so it is in force for the next commit.
    r = run_cli("trust", "add", "carol", carol.public, "--tiers", "middle", cwd=signed.root)
    assert r.code == 0
    signed.sign(signed.signer("alice"), signed.signer("bob"), tier="core")
    signed.commit("carol joins for middle")
    assert "QG-TRUST-CHANGE" not in rules(signed.verify())
    (signed.root / "src/demo/__init__.py").write_text("VERSION = 2\n")
    signed.sign(signed.signer("alice"))

    # `sign` never adds a signature that would not count, so add carol's and dave's by hand.
    def add_others(e: Envelope) -> Envelope:
        for who in (carol, dave):
            k = signing_key(who)
            e = e.with_signature(Signature(keyid=k.public.keyid, sig=k.sign(e.pae)))
        return e

    _rewrite_envelope(signed, "core", add_others)
    signed.commit("core change signed by alice, carol and dave, not bob")
    report = signed.verify(trust_ref="HEAD")
    f = only(report, "QG-SIG-THRESHOLD")
    assert f.tier == "core" and f.details["signers"] == ["alice"]
    assert "carol (not trusted for tier 'core' now)" in f.message
    assert "unknown key or bad signature" in f.message


def test_expired_manifest(signed: Protected) -> None:
    later = datetime.now(UTC) + timedelta(days=181)
    report = signed.verify(now=later)
    assert {f.tier for f in report.findings if f.rule == "QG-SIG-EXPIRED"} == {
        "core",
        "middle",
        "outer",
    }
    assert report.exit_code == 1
    assert "QG-SIG-EXPIRED" not in rules(signed.verify(now=later - timedelta(days=2)))


def test_narrowed_policy_fails(signed: Protected) -> None:
    # Someone narrows core's patterns (so a file leaves the two-signer tier) and commits.
    policy = signed.root / ".qeguard/policy.toml"
    policy.write_text(
        'extends = "qemlflow"\n[[tiers]]\nname = "core"\n'
        'patterns = ["pyproject.toml", ".qeguard/**"]\n'
    )
    signed.commit("narrow core")
    # Committed is not approved: the old policy stays in force.
    report = signed.verify()
    assert "QG-TRUST-CHANGE" in rules(report)
    assert "QG-SIG-POLICY" not in rules(report)
    assert report.exit_code == 1
    # Approved by core's two signers: in force, and the tiers signed under the old
    # policy no longer match it.
    signed.sign(signed.signer("alice"), signed.signer("bob"), tier="core")
    signed.commit("core signers approve the narrower policy")
    report = signed.verify()
    assert "QG-TRUST-CHANGE" not in rules(report)
    policy_findings = [f for f in report.findings if f.rule == "QG-SIG-POLICY"]
    assert {f.tier for f in policy_findings} == {"middle", "outer"}
    assert report.exit_code == 1


def test_uncommitted_policy_change_is_not_trusted(signed: Protected) -> None:
    policy = signed.root / ".qeguard/policy.toml"
    policy.write_text('extends = "qemlflow"\n[[tiers]]\nname = "core"\nthreshold = 0\n')
    report = signed.verify()
    assert "QG-TRUST-CHANGE" in rules(report)
    assert report.exit_code == 1


def test_self_approved_trust_change_is_refused(signed: Protected, keypair: Any) -> None:
    # mallory adds herself to trust.toml and signs everything: the old trust did not agree.
    mallory = keypair("mallory")
    signed.ok("trust", "add", "mallory", mallory.public, "--tiers", "core,middle")
    signed.sign(mallory)
    report = signed.verify()
    assert "QG-TRUST-CHANGE" in rules(report)
    assert report.exit_code == 1


def test_rollback_to_older_manifest(signed: Protected) -> None:
    old_list = (signed.root / list_path("middle")).read_bytes()
    old_env = (signed.root / envelope_path("middle")).read_bytes()
    (signed.root / "src/demo/util.py").write_text("def helper():\n    return 22\n")
    signed.sign(signed.signer("alice"), tier="middle")
    signed.commit("v2")
    (signed.root / "src/demo/util.py").write_text("def helper():\n    return 2\n")
    (signed.root / list_path("middle")).write_bytes(old_list)
    (signed.root / envelope_path("middle")).write_bytes(old_env)
    report = signed.verify(trust_ref="HEAD")
    f = only(report, "QG-SIG-ROLLBACK")
    assert f.severity is Severity.CRITICAL


def test_cli_exit_codes(signed: Protected, run_cli: Any) -> None:
    r = run_cli("verify", cwd=signed.root)
    assert r.code == 0, r.out
    (signed.root / "src/demo/util.py").write_text("tampered\n")
    r = run_cli("verify", cwd=signed.root)
    assert r.code == 1 and "QG-INT-MODIFIED" in r.out and "src/demo/util.py" in r.out
    r = run_cli("verify", "--trust-ref", "no-such-ref", cwd=signed.root)
    assert r.code == 2 and "no-such-ref" in r.err
    (signed.root / ".qeguard/policy.toml").write_text("[[tiers]]\nname = 'a'\nthreshold = -1\n")
    signed.commit("break the policy")
    r = run_cli("verify", cwd=signed.root)
    assert r.code == 2 and "tiers[0].threshold" in r.err and "Traceback" not in r.err


def test_internal_error_is_exit_3(
    signed: Protected, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr("qeguard.cli.commands.verify.run_verify", boom)
    r = run_cli("verify", cwd=signed.root)
    assert r.code == 3 and "internal error: RuntimeError: simulated bug" in r.err
