#!/usr/bin/env python3
"""Hook benchmark: `qeguard verify --staged` against `git status` in a large repository.

usage: python benchmarks/bench_hook.py [--files 100000] [--staged 10] [--runs 7] [--dir DIR]

Builds (once, then reuses) a git repository of --files files shaped like a Python
monorepo (benchmarks/mktree.py), protects all of it with two tiers (pkg00/ in `core`,
threshold 2; everything else in `middle`), signs and commits. Then it changes and stages
--staged protected files and times, warm and interleaved, the median of --runs runs of:

    git status                         (stats every tracked file, scans for untracked ones)
    qeguard verify --staged -q         (what the pre-commit hook runs)

and prints both and the ratio. The target is a ratio <= 0.5: the hook reads only the
staged paths and the manifests, never the whole tree. See docs/git.md for a result.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
POLICY = """\
fail_on = "medium"

[[tiers]]
name = "core"
threshold = 2
patterns = ["pkg00/**", ".qeguard/**"]

[[tiers]]
name = "middle"
threshold = 1
patterns = ["pkg*/**"]
"""


def qeguard() -> list[str]:
    exe = shutil.which("qeguard", path=os.path.dirname(sys.executable)) or shutil.which("qeguard")
    return [exe] if exe else [sys.executable, "-m", "qeguard"]


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, cwd=cwd, check=check, capture_output=True)


def build(root: Path, files: int) -> None:
    marker = root / ".git" / "qeguard-bench-ready"
    if marker.exists():
        return
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    print(f"building a {files}-file repository in {root} (once)...", flush=True)
    sh(root, sys.executable, str(HERE / "mktree.py"), ".", "--files", str(files))
    sh(root, "git", "init", "-q", "-b", "main")
    for k, v in (("user.name", "Bench"), ("user.email", "bench@example.com")):
        sh(root, "git", "config", k, v)
    keys = root.parent / f"{root.name}-keys"
    keys.mkdir(exist_ok=True)
    from qeguard.integrity.keys import generate

    qg = qeguard()
    (root / ".qeguard").mkdir()
    (root / ".qeguard" / "policy.toml").write_text(POLICY)
    for name in ("alice", "bob"):
        private, public = generate(name, None)
        key = keys / name
        key.write_bytes(private)
        key.chmod(0o600)
        (keys / f"{name}.pub").write_text(public + "\n")
        sh(root, *qg, "trust", "add", name, str(keys / f"{name}.pub"), "--tiers", "core,middle")
    for name in ("alice", "bob"):
        sh(root, *qg, "sign", "--key", str(keys / name))
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", "protected tree")
    marker.write_text("ok\n")


def stage_changes(root: Path, count: int) -> list[str]:
    sh(root, "git", "reset", "-q", "--hard", "HEAD")
    listed = sh(root, "git", "ls-files", "pkg01").stdout.decode().split()
    chosen = [p for p in listed if p.endswith(".py")][:count]
    for rel in chosen:
        with open(root / rel, "ab") as f:
            f.write(b"\n# changed for the benchmark\n")
    sh(root, "git", "add", "--", *chosen)
    return chosen


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--staged", type=int, default=10)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument(
        "--dir", type=Path, default=None, help="where to build (and reuse) the repository"
    )
    a = ap.parse_args()
    root = a.dir or Path(tempfile.gettempdir()) / f"qeguard-bench-{a.files}"
    build(root.resolve(), a.files)
    chosen = stage_changes(root, a.staged)
    hook = [*qeguard(), "verify", "--staged", "-q"]
    check = subprocess.run(hook, cwd=root, capture_output=True, text=True, check=False)
    flagged = sum(path in check.stdout for path in chosen)
    git_times: list[float] = []
    hook_times: list[float] = []
    timed(["git", "status"], root)  # warm the caches for both
    timed(hook, root)
    for _ in range(a.runs):
        git_times.append(timed(["git", "status"], root))
        hook_times.append(timed(hook, root))
    g, h = statistics.median(git_times), statistics.median(hook_times)
    print(f"repository: {a.files} files ({root}); staged: {len(chosen)} protected files")
    print(f"hook exit {check.returncode}, {flagged}/{len(chosen)} staged files reported")
    print(
        f"git status:                 median {g * 1000:7.0f} ms  (min {min(git_times) * 1000:.0f})"
    )
    print(
        f"qeguard verify --staged -q: median {h * 1000:7.0f} ms  (min {min(hook_times) * 1000:.0f})"
    )
    print(f"ratio hook / git status: {h / g:.2f}  (target <= 0.5)")
    sh(root, "git", "reset", "-q", "--hard", "HEAD")


if __name__ == "__main__":
    main()
