"""500 exact pins against the bundled PyPA snapshot, cold and warm, against the targets.

Run: python benchmarks/bench_deps.py [--repeat N]

Targets (issue 4): warm <= 0.5 s (index built), cold <= 2 s (empty cache folder, so the
time includes building the index).

Two measurements for each, both in fresh processes so no import, lru cache or parsed
record carries over from one run to the next:
- process: wall time of a whole `qeguard deps --format json --output FILE` process
  (interpreter start, imports, scan, report). This is what a user or a hook waits for.
- in-process: time of `run_scan(...)` alone inside a fresh interpreter, after imports.

Each figure is the median of --repeat runs (default 3); cold runs each get a new empty
cache folder. Child processes run without PYTHONDONTWRITEBYTECODE, so after the first
run Python loads cached bytecode, as it does for an installed package (pip compiles it at
install time); "cold" means qeguard's cache, not Python's. PASS/MISS compares the
process wall time (the stricter figure) to the target. The process's CPU time (user +
system) is printed too: on a shared, loaded machine wall time includes waiting for a CPU,
and the load average printed says how much.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"warm": 0.5, "cold": 2.0}
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PINS = 500

_IN_PROCESS = """
import sys, time
from pathlib import Path
from qeguard.deps.audit import run_scan
t = time.perf_counter()
result = run_scan(Path(sys.argv[1]), None)
elapsed = time.perf_counter() - t
vulns = sum(1 for f in result.report.findings if f.rule == "QG-DEP-VULN")
print(f"{elapsed} {vulns}")
"""


def write_pins(repo: Path, cache: Path) -> int:
    """A requirements file of PINS packages, each pinned at a version its records list,
    so matching does real work. Built with its own cache folder, never a measured one."""
    os.environ["QEGUARD_CACHE_DIR"] = str(cache)
    from qeguard.deps.database import open_database
    from qeguard.deps.model import parse_version

    db = open_database()
    lines = []
    for n in db.package_names()[:PINS]:
        listed = sorted(
            v
            for r in db.records_for(n)
            for a in r.affected
            for v in a.versions
            if (pv := parse_version(v)) is not None and str(pv) == v
        )
        lines.append(f"{n}=={listed[0] if listed else '1.0'}")
    repo.mkdir()
    (repo / "requirements.txt").write_text("\n".join(lines) + "\n")
    return len(lines)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_process(repo: Path, cache: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole `qeguard deps` process."""
    qeguard = Path(sys.executable).with_name("qeguard")
    cmd = [str(qeguard), "-q", "-C", str(repo), "deps", "--format", "json", "--output", str(out)]
    env = {**_ENV, "QEGUARD_CACHE_DIR": str(cache)}
    cpu = _children_cpu()
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise SystemExit(f"qeguard deps failed ({proc.returncode}): {proc.stderr}")
    return elapsed, _children_cpu() - cpu


def run_in_process(repo: Path, cache: Path) -> tuple[float, int]:
    env = {**_ENV, "QEGUARD_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [sys.executable, "-c", _IN_PROCESS, str(repo)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed, vulns = proc.stdout.split()
    return float(elapsed), int(vulns)


def startup() -> float:
    """Wall time of `qeguard deps --help`: interpreter plus the command's imports."""
    qeguard = Path(sys.executable).with_name("qeguard")
    t = time.perf_counter()
    subprocess.run([str(qeguard), "deps", "--help"], env=_ENV, capture_output=True, check=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        repo = tmp / "repo"
        count = write_pins(repo, tmp / "pin-cache")
        run_process(repo, tmp / "pin-cache", tmp / "out.json")  # writes Python's bytecode
        results: dict[tuple[str, str], list[float]] = {}
        vulns = 0
        for i in range(args.repeat):
            # Cold: a new empty cache folder for each run, so each builds the index.
            wall, cpu = run_process(repo, tmp / f"cold-p{i}", tmp / "out.json")
            results.setdefault(("cold", "process"), []).append(wall)
            results.setdefault(("cold", "cpu"), []).append(cpu)
            elapsed, vulns = run_in_process(repo, tmp / f"cold-i{i}")
            results.setdefault(("cold", "in-process"), []).append(elapsed)
        warm = tmp / "warm"
        run_process(repo, warm, tmp / "out.json")  # builds the index once
        for _ in range(args.repeat):
            wall, cpu = run_process(repo, warm, tmp / "out.json")
            results.setdefault(("warm", "process"), []).append(wall)
            results.setdefault(("warm", "cpu"), []).append(cpu)
            elapsed, vulns = run_in_process(repo, warm)
            results.setdefault(("warm", "in-process"), []).append(elapsed)
        start = statistics.median(startup() for _ in range(args.repeat))

    print(f"{count} exact pins, {vulns} vulnerability findings; median of {args.repeat} runs")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    for cache in ("warm", "cold"):
        target = TARGETS[cache]
        proc = statistics.median(results[(cache, "process")])
        inproc = statistics.median(results[(cache, "in-process")])
        cpu = statistics.median(results[(cache, "cpu")])
        verdict = "PASS" if proc <= target else "MISS"
        print(
            f"{cache}: process {proc:.3f} s wall ({cpu:.3f} s CPU), in-process scan "
            f"{inproc:.3f} s (target <= {target} s, whole process wall): {verdict}"
        )
    print(f"start-up (`qeguard deps --help`, whole process): {start:.3f} s")


if __name__ == "__main__":
    main()
