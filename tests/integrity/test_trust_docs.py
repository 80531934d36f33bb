"""The trust examples of docs/trust.md and docs/git.md, run as shown (bash, real git, the
installed `qeguard`), so the documentation cannot drift from what the tool does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import FILES, PROJECT, Protected, git_run, make_keypair, with_bare_remote


def _block(doc: str, heading: str, *, lang: str = "") -> str:
    """The first fenced block after `heading` in docs/`doc`."""
    text = (PROJECT / "docs" / doc).read_text(encoding="utf-8")
    after = text[text.index(heading) :]
    m = re.search(rf"```{lang}\n(.*?)```", after, re.DOTALL)
    assert m, f"no code block after {heading!r} in {doc}"
    return m.group(1)


def _bash(script: str, cwd: Path, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full["PATH"] = os.path.dirname(sys.executable) + os.pathsep + full["PATH"]
    full.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), **env)
    full.pop("CI", None)
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script.replace("\\\n", " ")],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )


def _setup(tmp_path: Path) -> tuple[Protected, Path]:
    """A repository protected by alice and bob whose keys live where `qeguard keygen`
    puts them (~/.config/qeguard/keys), as the examples assume."""
    home = tmp_path / "home"
    keys = home / ".config" / "qeguard" / "keys"
    signers = [make_keypair(keys, name) for name in ("alice", "bob", "carol")]
    files = {**FILES, "requirements.txt": "packaging==24.1\n"}  # something for `ci` to scan
    p = Protected.build(tmp_path / "repo", signers[:2], files=files)
    return p, home


def test_the_pinning_example_names_the_root_verify_reports(tmp_path: Path) -> None:
    p, home = _setup(tmp_path)
    r = _bash(_block("trust.md", "### Pinning the root"), p.root, home)
    assert r.returncode == 0, r.stderr
    root = r.stdout.strip()
    assert p.cli("verify").out.count(f"trust root {root} ") == 1
    pinned = _bash(f"qeguard verify --trust-root {root}", p.root, home)
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert f"trust root {root} (pinned by --trust-root)" in pinned.stdout


def test_the_key_rotation_example_runs_as_shown(tmp_path: Path) -> None:
    p, home = _setup(tmp_path)
    (p.root / "carol.pub").write_bytes((home / ".config/qeguard/keys/carol.pub").read_bytes())
    with (p.root / ".git" / "info" / "exclude").open("a") as f:
        f.write("carol.pub\n")
    r = _bash(_block("git.md", "## Key rotation"), p.root, home)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 approved trust change(s)" in r.stdout
    assert p.verify().exit_code == 0


def test_the_ci_command_line_example_runs_as_shown(tmp_path: Path) -> None:
    p, home = _setup(tmp_path)
    with_bare_remote(tmp_path, p.root)
    root = git_run(p.root, "rev-list", "--max-parents=0", "HEAD").strip()
    example = _block("git.md", "By hand, or in another CI:")
    r = _bash(example, p.root, home, QEGUARD_TRUST_ROOT=root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"trust root {root} (pinned by --trust-root)" in r.stdout
    assert (p.root / "qeguard.sarif").is_file()
