"""The pull-request comment the workflows post: one comment, updated in place, written by
a job that holds only `pull-requests: write`, from Markdown under GitHub's comment limit.

The post/update script is the workflow's own, run by bash; `gh` (not installed here, and
it would reach GitHub) is replaced by a stand-in that answers from a list of comments,
filters them with the real `jq` as `gh api --jq` does, and records what was sent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import PROJECT
from helpers.report_samples import many_findings_report
from qeguard.cli.main import main
from qeguard.render import render

WORKFLOWS = {
    "file-protection.yml": ("verify", "qeguard-integrity.json", "qeguard:file-protection"),
    "dependencies.yml": ("scan", "qeguard-deps.json", "qeguard:dependencies"),
}


def _workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PROJECT / ".github" / "workflows" / name).read_text())
    return data


def _step(job: dict[str, Any], startswith: str) -> dict[str, Any]:
    return next(s for s in job["steps"] if str(s.get("name", "")).startswith(startswith))


@pytest.mark.parametrize("name", WORKFLOWS)
def test_the_comment_job_has_only_the_permission_it_needs(name: str) -> None:
    scan_job, json_file, marker = WORKFLOWS[name]
    jobs = _workflow(name)["jobs"]
    comment = jobs["comment"]
    assert comment["permissions"] == {"pull-requests": "write"}
    assert comment["needs"] == scan_job
    assert "github.event_name == 'pull_request'" in comment["if"]
    assert "head.repo.full_name == github.repository" in comment["if"]  # no fork tokens
    text = json.dumps(comment)
    assert "secrets." not in text and "${{ github.token }}" in text
    assert not any("actions/checkout" in str(s.get("uses", "")) for s in comment["steps"])
    post = _step(comment, "Post or update")
    assert post["env"]["MARKER"] == f"<!-- {marker} -->"
    # The scanning job writes the JSON report and renders the comment from it.
    scan = jobs[scan_job]
    assert any(f"--output {json_file}" in str(s.get("run", "")) for s in scan["steps"])
    rendered = _step(scan, "Render the pull-request comment")["run"]
    assert f"qeguard report {json_file} --format markdown --markdown-limit 65000" in rendered
    assert "permissions" in scan and "pull-requests" not in scan["permissions"]


def test_the_rendered_comment_fits_and_shows_verdict_and_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "qeguard-deps.json"
    saved.write_text(render(many_findings_report(30_000), "json"))
    out = tmp_path / "qeguard-comment.md"
    argv = ["report", str(saved), "--format", "markdown", "--markdown-limit", "65000"]
    assert main([*argv, "--output", str(out)]) == 0
    body = out.read_text()
    assert len(body) <= 65_536
    assert body.startswith("## qeguard ci: FAIL")
    assert "](https://osv.dev/vulnerability/PYSEC-" in body
    assert "more findings not shown" in body
    capsys.readouterr()


_FAKE_GH = r"""
import json, os, subprocess, sys
args = sys.argv[1:]
log = os.environ["FAKE_GH_LOG"]
assert args[0] == "api"
if "--jq" in args:
    comments = open(os.environ["FAKE_GH_COMMENTS"]).read()
    jq = args[args.index("--jq") + 1]
    out = subprocess.run(["jq", "-r", jq], input=comments, capture_output=True, text=True,
                         check=True)
    sys.stdout.write(out.stdout)
    sys.exit(0)
method = args[args.index("--method") + 1]
url = args[args.index("--method") + 2]
field = args[args.index("-F") + 1]
key, _, value = field.partition("=")
assert key == "body" and value.startswith("@")
with open(log, "a") as f:
    f.write(json.dumps({"method": method, "url": url, "body": open(value[1:]).read()}) + "\n")
"""


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
@pytest.mark.parametrize("name", WORKFLOWS)
def test_the_script_updates_its_own_comment_in_place(name: str, tmp_path: Path) -> None:
    marker = f"<!-- {WORKFLOWS[name][2]} -->"
    script = _step(_workflow(name)["jobs"]["comment"], "Post or update")["run"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(f"#!{sys.executable}\n{_FAKE_GH}")
    gh.chmod(0o755)
    (tmp_path / "qeguard-comment.md").write_text("## qeguard verify: FAIL\n")
    log = tmp_path / "log.jsonl"
    comments = tmp_path / "comments.json"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GH_TOKEN": "t",
        "REPO": "o/r",
        "PR": "7",
        "MARKER": marker,
        "FAKE_GH_LOG": str(log),
        "FAKE_GH_COMMENTS": str(comments),
    }

    def run(existing: list[dict[str, Any]]) -> dict[str, Any]:
        comments.write_text(json.dumps(existing))
        log.unlink(missing_ok=True)
        subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, check=True)
        (call,) = [json.loads(line) for line in log.read_text().splitlines()]
        return call

    others = [
        {"id": 1, "user": {"login": "alice"}, "body": marker + " quoted by a person"},
        {"id": 2, "user": {"login": "github-actions[bot]"}, "body": "<!-- other -->"},
    ]
    first = run(others)
    assert first["method"] == "POST" and first["url"] == "repos/o/r/issues/7/comments"
    assert first["body"] == f"{marker}\n## qeguard verify: FAIL\n"
    mine = {"id": 99, "user": {"login": "github-actions[bot]"}, "body": first["body"]}
    again = run([*others, mine])
    assert again["method"] == "PATCH" and again["url"] == "repos/o/r/issues/comments/99"
