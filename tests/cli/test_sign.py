"""What `qeguard sign` says when it cannot sign: exactly why, with a non-zero exit, and
nothing written; a threshold-0 tier needs no key at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import Protected


@pytest.fixture
def project(repo: Path, keypair: Any) -> Protected:
    """qemlflow preset: alice and bob for core and middle, both signed, committed."""
    return Protected.build(repo, [keypair("alice"), keypair("bob")])


def manifests(p: Protected) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted((p.root / ".qeguard/manifests").iterdir())}


@pytest.mark.parametrize(
    ("trust", "needle"),
    [
        (None, "is not trusted at all: no signer in .qeguard/trust.toml"),
        (("--tiers", "middle"), "carol is trusted for middle, not for tier 'core'"),
        (
            ("--tiers", "core", "--valid-before", "2020-05-17"),
            "carol's trust window ended on 2020-05-17",
        ),
        (
            ("--tiers", "core", "--valid-after", "2999-01-01"),
            "carol's trust window starts on 2999-01-01",
        ),
    ],
)
def test_a_key_that_may_not_sign_fails_and_says_why(
    project: Protected, keypair: Any, trust: tuple[str, ...] | None, needle: str
) -> None:
    carol = keypair("carol")
    if trust is not None:
        project.ok("trust", "add", "carol", carol.public, *trust)
    (project.root / "src/pkg/core/model.py").write_text("changed\n")
    before = manifests(project)
    r = project.cli("sign", "--key", carol.private, "--tier", "core")
    assert r.code == 2, r.text
    assert "nothing was signed" in r.err and needle in r.err
    assert "next:" not in r.err
    assert manifests(project) == before


def test_signing_every_tier_leaves_other_signers_tiers_alone(
    project: Protected, keypair: Any
) -> None:
    carol = keypair("carol")
    project.ok("trust", "add", "carol", carol.public, "--tiers", "middle")
    (project.root / "src/pkg/util.py").write_text("HELPER = 2\n")
    core_before = (project.root / ".qeguard/manifests/core.dsse.json").read_bytes()
    r = project.ok("sign", "--key", carol.private)
    assert "core: skipped - carol is trusted for middle, not for tier 'core'" in r.out
    assert "middle: new payload (sequence 2" in r.out
    assert (project.root / ".qeguard/manifests/core.dsse.json").read_bytes() == core_before


def test_threshold_zero_tier_is_re_recorded_without_a_key(project: Protected) -> None:
    (project.root / "docs/guide.md").write_text("# Guide, second edition\n")
    r = project.ok("sign", "--tier", "outer")  # no --key, no QEGUARD_KEY, no keys folder
    assert r.out.startswith("outer: unsigned (sequence 2, 1 file)")
    assert project.cli("verify").code == 0
    r = project.cli("sign", "--tier", "core")
    assert r.code == 2 and "which key should sign?" in r.err
