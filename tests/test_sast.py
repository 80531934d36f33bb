"""`qeguard deps --sast`: a real bandit run over a temporary git repository."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from qeguard.cli.main import main
from qeguard.sast import findings_from_bandit, python_files

UNSAFE = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QEGUARD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qg-cache"))


@pytest.fixture
def sast_repo(repo: Path, write, git) -> Path:
    write(
        repo,
        {
            "requirements.txt": "requests==2.32.3\n",
            "src/app.py": UNSAFE,
            "src/clean.py": "def add(a, b):\n    return a + b\n",
            "ignored/generated.py": UNSAFE,
            ".gitignore": "ignored/\n",
        },
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    return repo


def test_python_files_respect_gitignore(sast_repo: Path):
    (sast_repo / "src" / "new.py").write_text("x = 1\n")  # untracked, not ignored: included
    assert python_files(sast_repo) == ["src/app.py", "src/clean.py", "src/new.py"]


def test_python_files_outside_git_skip_hidden_and_venvs(tmp_path: Path):
    for rel in ("a.py", "pkg/b.py", ".venv/lib/c.py", "venv/d.py", "pkg/__pycache__/e.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    assert python_files(tmp_path) == ["a.py", "pkg/b.py"]


def test_sast_findings_in_the_deps_report(sast_repo: Path, capsys):
    pytest.importorskip("bandit")
    code = main(["-C", str(sast_repo), "deps", "--sast", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    sast = [f for f in report["findings"] if f["rule"].startswith("QG-SAST-")]
    shell = [f for f in sast if f["rule"] == "QG-SAST-B602"]
    assert len(shell) == 1, sast
    assert shell[0]["severity"] == "high"
    assert shell[0]["location"] == {"path": "src/app.py", "line": 5}
    assert shell[0]["details"]["confidence"] == "high"
    assert not any(f["location"]["path"].startswith("ignored/") for f in sast)
    assert code == 1  # a high finding fails at the default fail_on
    assert report["inputs"]["services"][-1] == "bandit"  # the report says bandit ran


def test_sast_in_a_plain_folder_and_unparsable_file(tmp_path: Path, capsys):
    pytest.importorskip("bandit")
    (tmp_path / "requirements.txt").write_text("requests==2.32.3\n")
    (tmp_path / "bad.py").write_text("def broken(:\n")
    (tmp_path / "ok.py").write_text("assert True\n")
    main(["-C", str(tmp_path), "deps", "--sast", "--format", "json"])
    rules = {f["rule"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert rules["QG-SAST-B101"]["severity"] == "low"
    assert rules["QG-SAST-ERROR"]["location"]["path"] == "bad.py"


def test_bandit_json_mapping():
    data = {
        "results": [
            {
                "filename": "./pkg/m.py",
                "line_number": 3,
                "test_id": "B303",
                "test_name": "md5",
                "issue_severity": "MEDIUM",
                "issue_confidence": "HIGH",
                "issue_text": "Use of insecure MD5 hash function.",
                "issue_cwe": {"id": 327},
                "more_info": "https://bandit.readthedocs.io/",
            }
        ],
        "errors": [],
    }
    [f] = findings_from_bandit(data)
    assert (f.rule, f.severity.value, f.location.path, f.location.line) == (
        "QG-SAST-B303",
        "medium",
        "pkg/m.py",
        3,
    )
    assert f.details["confidence"] == "high" and f.details["cwe"] == 327


def test_without_bandit_a_clear_exit_2(tmp_path: Path):
    """In a fresh interpreter where `import bandit` cannot be found (a meta-path blocker),
    `qeguard deps --sast` exits 2 and says which extra to install."""
    (tmp_path / "requirements.txt").write_text("requests==2.32.3\n")
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'bandit' or name.startswith('bandit.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from qeguard.cli.main import main\n"
        "sys.exit(main(['-C', sys.argv[1], 'deps', '--sast']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'qeguard[sast]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bandit_is_importable_when_the_extra_is_installed():
    if importlib.util.find_spec("bandit") is None:
        pytest.skip("bandit (the sast extra) is not installed")
    import bandit

    assert bandit.__version__
