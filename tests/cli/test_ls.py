"""`qeguard ls`: what is protected, by which tier, in which state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers import CORE_FILE, EXEC_FILE, MIDDLE_FILE, Protected


@pytest.fixture
def project(repo: Path, keypair: Any) -> Protected:
    return Protected.build(repo, [keypair("alice"), keypair("bob")], special=True)


def test_every_protected_file_with_tier_and_state(project: Protected) -> None:
    (project.root / CORE_FILE).write_text("tampered\n")
    (project.root / MIDDLE_FILE).unlink()
    os.chmod(project.root / EXEC_FILE, 0o644)
    (project.root / "src/pkg/new.py").write_text("x = 1\n")
    doc = project.ok("ls", "--format", "json").json()
    state = {f["path"]: (f["tier"], f["state"]) for f in doc["files"]}
    assert state[CORE_FILE] == ("core", "modified")
    assert state[MIDDLE_FILE] == ("middle", "missing")
    assert state[EXEC_FILE] == ("core", "mode changed")
    assert state["src/pkg/new.py"] == ("middle", "unsigned")
    assert state["src/pkg/core/train.py"] == ("core", "ok")
    assert state["docs/guide.md"] == ("outer", "ok")
    assert "notes.txt" not in state  # not protected
    assert doc["untrusted_tiers"] == {}
    text = project.ok("ls").out.splitlines()
    assert any(line.split() == ["modified", "core", CORE_FILE] for line in text)


def test_tier_filter_and_unknown_tier(project: Protected) -> None:
    doc = project.ok("ls", "--tier", "outer", "--format", "json").json()
    assert {f["tier"] for f in doc["files"]} == {"outer"}
    r = project.cli("ls", "--tier", "nope")
    assert r.code == 2 and "unknown tier(s) nope" in r.err


def test_a_tier_without_a_trusted_manifest_is_unverified(project: Protected) -> None:
    (project.root / ".qeguard/manifests/middle.dsse.json").write_text("{}")
    r = project.ok("ls", "--tier", "middle", "--format", "json")
    assert {f["state"] for f in r.json()["files"]} == {"unverified"}
    assert "tier 'middle' is unverified" in r.err


def test_restore_points_to_ls(project: Protected) -> None:
    r = project.cli("restore", "notes.txt")
    assert r.code == 2 and "`qeguard ls` lists the protected files" in r.err
