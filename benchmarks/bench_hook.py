#!/usr/bin/env python3
"""The pre-commit hook's cost: `qeguard verify --staged` as a whole process (issue 13).

usage: python benchmarks/bench_hook.py [--small 450] [--large 100000] [--runs 11]
                                       [--work DIR] [--qeguard CMD]

Builds (once, then reuses) two git repositories shaped like a Python monorepo
(benchmarks/mktree.py) in the work folder: --small files (the target: about 500) and
--large files. Each is protected with two tiers (pkg00/ in `core`, threshold 2, two
signers; everything else in `middle`), signed and committed. Then, in each, protected
files change and are staged (1 in the small repository, 10 in the large one), and the
median of --runs interleaved whole-process runs is taken of:

    qeguard verify --staged -q        (what the pre-commit hook runs; it reports them)
    git status                        (the anchor: what a developer runs anyway)

Targets: the small repository's hook <= 0.12 s; the large one's <= 0.3 x git status.
The hook reads only the staged paths, the manifests and the index, never the tree.
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
SMALL_LIMIT_S = 0.12
LARGE_RATIO = 0.3


def default_work() -> Path:
    if Path("/work").is_dir() and os.access("/work", os.W_OK):
        return Path("/work/bench-work")
    return Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "qeguard-bench"


def qeguard_command(given: str | None) -> list[str]:
    if given:
        return given.split()
    exe = shutil.which("qeguard", path=os.path.dirname(sys.executable)) or shutil.which("qeguard")
    return [exe] if exe else [sys.executable, "-m", "qeguard"]


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, cwd=cwd, check=check, capture_output=True)


def build(root: Path, files: int, qg: list[str]) -> None:
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
    (root / ".qeguard").mkdir()
    (root / ".qeguard" / "policy.toml").write_text(POLICY)
    for name in ("alice", "bob"):
        sh(root, *qg, "keygen", "--name", name, "--out", str(keys / name))
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


def measure(root: Path, staged: int, runs: int, qg: list[str]) -> tuple[float, float, str]:
    """(hook median, git status median, a note) with `staged` protected files staged."""
    chosen = stage_changes(root, staged)
    hook = [*qg, "verify", "--staged", "-q"]
    check = subprocess.run(hook, cwd=root, capture_output=True, text=True, check=False)
    flagged = sum(path in check.stdout for path in chosen)
    git_times: list[float] = []
    hook_times: list[float] = []
    timed(["git", "status"], root)  # warm the caches for both
    timed(hook, root)
    load = os.getloadavg()[0]
    for _ in range(runs):
        git_times.append(timed(["git", "status"], root))
        hook_times.append(timed(hook, root))
    sh(root, "git", "reset", "-q", "--hard", "HEAD")
    note = (
        f"hook exit {check.returncode}, {flagged}/{len(chosen)} staged files reported; "
        f"load {load:.2f}-{os.getloadavg()[0]:.2f}"
    )
    return statistics.median(hook_times), statistics.median(git_times), note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=450, help="files in the small repository")
    ap.add_argument("--large", type=int, default=100_000, help="files in the large one (0: skip)")
    ap.add_argument("--runs", type=int, default=11, help="runs of each command (median)")
    ap.add_argument("--work", type=Path, default=default_work(), help="where to build them")
    ap.add_argument("--qeguard", default=None, help="qeguard command")
    a = ap.parse_args()
    qg = qeguard_command(a.qeguard)
    rows: list[tuple[str, str, str, bool]] = []
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for files, staged in ((a.small, 1), (a.large, 10)):
        if not files:
            continue
        root = (a.work / f"hook-{files}").resolve()
        build(root, files, qg)
        hook, git, note = measure(root, staged, a.runs, qg)
        print(
            f"{files} files, {staged} staged: qeguard verify --staged {hook * 1000:.0f} ms, "
            f"git status {git * 1000:.0f} ms (medians of {a.runs}; {note})"
        )
        if files == a.small:
            rows.append(
                (
                    f"hook, {files} files, 1 staged (s)",
                    f"{hook:.3f}",
                    f"<= {SMALL_LIMIT_S}",
                    hook <= SMALL_LIMIT_S,
                )
            )
        else:
            ratio = hook / git
            rows.append(
                (
                    f"hook / git status, {files // 1000}k files, 10 staged",
                    f"{ratio:.3f}",
                    f"<= {LARGE_RATIO}",
                    ratio <= LARGE_RATIO,
                )
            )
    print(f"\n{'target':<44} {'value':>8}  {'goal':>7}  result")
    for label, value, goal, ok in rows:
        print(f"{label:<44} {value:>8}  {goal:>7}  {'PASS' if ok else 'MISS'}")
    sys.exit(0 if all(ok for *_, ok in rows) else 1)


if __name__ == "__main__":
    main()
