"""The documentation tells the truth: every doc a message cites exists, the README's map
and architecture match the tree, no example pins a revision that does not exist, and the
Quick Start runs as shown, with the installed console script, in a scratch repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PROJECT, commit, init_repo, write_files

README = PROJECT / "README.md"
DOCS = sorted((PROJECT / "docs").glob("*.md"))
BIN = Path(sys.executable).parent


def _block(text: str, heading: str, lang: str) -> str:
    """The first ```lang block after `heading`."""
    after = text.split(f"\n{heading}\n", 1)[1]
    match = re.search(rf"```{lang}\n(.*?)```", after, re.S)
    assert match, f"no ```{lang} block under {heading!r}"
    return match.group(1)


def _cited_docs() -> set[str]:
    sources = [*(PROJECT / "guard").rglob("*.py"), *(PROJECT / "hooks").iterdir(), README, *DOCS]
    sources += [PROJECT / ".pre-commit-hooks.yaml", PROJECT / "action.yml"]
    cited: set[str] = set()
    for path in sources:
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            cited.update(re.findall(r"\bdocs/[\w.-]+\.md\b", text))
    return cited


def test_every_doc_cited_by_messages_hooks_and_docs_exists() -> None:
    cited = _cited_docs()
    assert {"docs/git.md", "docs/deps.md", "docs/policy.md"} <= cited
    assert sorted(c for c in cited if not (PROJECT / c).is_file()) == []


def test_the_readme_maps_every_doc() -> None:
    text = README.read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", text))
    assert linked == {f"docs/{d.name}" for d in DOCS}


def test_the_architecture_section_matches_the_folders() -> None:
    block = _block(README.read_text(encoding="utf-8"), "## Architecture", "")
    listed = {m.group(1) for m in re.finditer(r"^  (\S+)", block, re.M)}
    top = {m.group(1) for m in re.finditer(r"^(\S+/)", block, re.M)}
    guard = PROJECT / "guard"
    present = {
        p.name + ("/" if p.is_dir() else "")
        for p in guard.iterdir()
        if not p.name.startswith(("_", ".")) and p.name != "py.typed"
    }
    assert listed == present
    assert all((PROJECT / t).is_dir() for t in top), top


def test_no_example_pins_a_revision_that_does_not_exist() -> None:
    tags = subprocess.run(
        ["git", "tag", "--list"], cwd=PROJECT, capture_output=True, text=True, check=False
    ).stdout.split()
    for doc in (README, *DOCS):
        for rev in re.findall(r"^\s*rev:\s*(\S+)", doc.read_text(encoding="utf-8"), re.M):
            # A placeholder the reader replaces (COMMIT_ID), or a tag that exists.
            assert re.fullmatch(r"[A-Z][A-Z_]+", rev) or rev in tags, (doc.name, rev)


# The project a user protects in the Quick Start: the qemlflow layout.
PROJECT_FILES: dict[str, str | bytes] = {
    "src/pkg/__init__.py": "",
    "src/pkg/core/model.py": "def predict(x):\n    return 2 * x\n",
    "src/pkg/util.py": "HELPER = 1\n",
    "docs/guide.md": "# Guide\n",
    ".gitignore": "__pycache__/\n",
}


def _shell(
    script: str, cwd: Path, home: Path, *, online: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "NO_COLOR": "1",
    }
    if online:
        # As a user runs it, network allowed (so `status` counts on scans to refresh the
        # old bundled database); a refresh would go to a closed local port, never out.
        del env["QEGUARD_OFFLINE"]
        env["QEGUARD_DB_URL"] = "http://127.0.0.1:9/PyPI/all.zip"
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_quick_start_runs_as_shown(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    lines = [
        line for line in _block(text, "## Quick start: protect a repository", "sh").splitlines()
    ]
    commands = [line.split("  #")[0].strip() for line in lines if line.strip()]
    # Installing is what this test environment did already; the repository is a scratch one.
    assert commands[0] == "pip install ." and commands[1].startswith("cd ")
    repo = init_repo(tmp_path / "your-project")
    write_files(repo, PROJECT_FILES)
    commit(repo, "the project")
    script = "set -euo pipefail\n" + "\n".join(f"echo '+ {c}' >&2\n{c}" for c in commands[2:])
    done = _shell(script, repo, tmp_path / "home", online=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("healthy")
    # No private key anywhere in the work tree; nothing left for `git add -A` to take.
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status == ""
    assert not [p for p in repo.rglob("*") if "PRIVATE KEY" in _head(p)]

    # The tamper example prints what the README shows.
    console = _block(text, "Now change a protected file and verify again:", "console")
    shown = [line for line in console.splitlines() if not line.startswith(("$", "..."))]
    tamper = next(line[2:] for line in console.splitlines() if line.startswith('$ echo "tamper'))
    done = _shell(f"{tamper}\nqeguard verify; echo $?", repo, tmp_path / "home")
    actual = re.sub(r"; \d+\.\d+s\)", "; 0.0s)", done.stdout)
    missing = [line for line in shown if line not in actual.splitlines()]
    assert missing == [], actual


def _head(path: Path) -> str:
    if not path.is_file() or path.is_symlink():
        return ""
    with path.open("rb") as f:
        return f.read(128).decode("utf-8", "replace")


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.name)
def test_docs_show_output_as_qeguard_prints_it(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for stale in ("2/2 signers", "2/1 signers", "day(s)", "--json --log", "rev: v0.1.0"):
        assert stale not in text, (doc.name, stale)
