"""The command line itself: usage errors name the command, -C checks its folder, -q is
honoured by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import KeyPair, Protected, git_run, protect


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["verify", "--bogus"], "usage: qeguard verify "),
        (["trust", "add", "a", "k.pub", "--tiers", "core", "--bogus"], "usage: qeguard trust add "),
        (["status", "--frobnicate"], "usage: qeguard status "),
    ],
)
def test_unknown_option_prints_that_commands_usage(
    args: list[str], usage: str, run_cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(*args).code == 2
    err = capsys.readouterr().err  # argparse writes its usage to stderr itself
    assert usage in err and "unrecognized arguments: --" in err
    assert "usage: qeguard [-h]" not in err  # not the top-level usage


def test_repo_option_names_a_missing_folder_or_a_file(
    run_cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("-C", tmp_path / "nope", "verify").code == 2
    err = capsys.readouterr().err
    assert f"-C {tmp_path / 'nope'}: no such folder" in err and "no policy" not in err
    (tmp_path / "file").write_text("x")
    assert run_cli("verify", "-C", tmp_path / "file").code == 2
    assert "not a folder" in capsys.readouterr().err


def test_quiet_init_sign_status_install_hooks_and_verify(
    repo: Path, keypair: Any, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Network allowed, as for a user: scans refresh the old bundled database (none runs).
    monkeypatch.delenv("QEGUARD_OFFLINE")
    alice: KeyPair = keypair("alice")
    for args in (
        ("init", "--preset", "default"),
        ("trust", "add", "alice", alice.public, "--tiers", "*"),
    ):
        r = run_cli("-q", *args, cwd=repo)
        assert r.code == 0 and (r.out, r.err) == ("", ""), r.text
    r = run_cli("sign", "-q", "--key", alice.private, cwd=repo)
    assert r.code == 0 and (r.out, r.err) == ("", ""), r.text
    git_run(repo, "add", "-A")
    git_run(repo, "commit", "-q", "-m", "protect")
    r = run_cli("install-hooks", "-q", cwd=repo)
    assert r.code == 0 and (r.out, r.err) == ("", ""), r.text
    # A clean verify prints nothing at all under -q; so does a healthy status.
    r = run_cli("verify", "-q", cwd=repo)
    assert r.code == 0 and (r.out, r.err) == ("", ""), r.text
    r = run_cli("status", "-q", cwd=repo)
    assert r.code == 0 and (r.out, r.err) == ("", ""), r.text
    # Problems are still printed, and nothing else.
    (repo / "src").mkdir(exist_ok=True)
    (repo / "src/new.py").write_text("x = 1\n")
    r = run_cli("status", "-q", cwd=repo)
    assert r.code == 1 and r.out.startswith("! tier source:") and "healthy" not in r.out


def test_common_options_after_a_subcommands_own_arguments(
    repo: Path, keypair: Any, run_cli: Any
) -> None:
    """`-q` and `-C` work after `trust add ...` and `db info`, as after `verify`."""
    alice: KeyPair = keypair("alice")
    assert run_cli("init", "--preset", "default", cwd=repo).code == 0
    r = run_cli("trust", "add", "alice", alice.public, "--tiers", "*", "-q", "-C", repo)
    assert r.code == 0 and (r.out, r.err) == ("", ""), r.text
    assert "alice" in (repo / ".qeguard/trust.toml").read_text()
    r = run_cli("trust", "list", "-C", repo)
    assert r.code == 0 and "alice" in r.out, r.text
    r = run_cli("db", "info", "-q", "-C", repo)
    assert r.code == 0 and "database:" in r.out, r.text


def test_out_of_the_box_status_is_healthy(
    repo: Path, keypair: Any, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed, committed, hooks installed, the bundled database: nothing to act on; the
    database's age is a note, since a dependency scan refreshes it when online (the
    network is allowed here, as for a user; status itself never uses it)."""
    monkeypatch.delenv("QEGUARD_OFFLINE")
    protect(repo, keypair("alice"), keypair("bob"))
    assert run_cli("install-hooks", cwd=repo).code == 0
    r = run_cli("status", cwd=repo)
    assert r.code == 0, r.out
    assert r.out.rstrip().endswith("healthy")
    assert "days old; dependency scans refresh it when online" in r.out


def test_status_watch_and_trust_list_share_format_and_output(
    repo: Path, keypair: Any, run_cli: Any, tmp_path: Path
) -> None:
    p = Protected.build(repo, [keypair("alice"), keypair("bob")])
    out = tmp_path / "new folder" / "status.json"
    r = p.cli("status", "--format", "json", "--output", out)
    assert r.code in (0, 1) and r.out == ""
    assert f"created the folder {out.parent}" in r.err
    assert '"schema": "qeguard.status/v1"' in out.read_text()
    r = p.cli("trust", "list", "--format", "json")
    assert [s["name"] for s in r.json()["signers"]] == ["alice", "bob"]
    for args in (("status", "--format", "sarif"), ("trust", "list", "-f", "html")):
        r = p.cli(*args)
        assert r.code == 2 and "this command writes text or json" in r.err
    # watch parses the same pair (it runs until stopped; its output is tested in
    # tests/integrity/test_watch.py).
    r = p.cli("watch", "--format", "junit")
    assert r.code == 2 and "text or json" in r.err


def test_report_output_into_a_missing_folder_says_it_created_it(
    repo: Path, keypair: Any, tmp_path: Path
) -> None:
    p = protect(repo, keypair("alice"), keypair("bob"))
    out = tmp_path / "nonexistent" / "dir" / "r.json"
    r = p.cli("verify", "--format", "json", "--output", out)
    assert r.code == 0 and out.is_file()
    assert f"created the folder {out.parent} for --output" in r.err
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    r = p.cli("verify", "--format", "json", "--output", blocked / "r.json")
    assert r.code == 2 and "cannot write the json report" in r.err and "Traceback" not in r.err
