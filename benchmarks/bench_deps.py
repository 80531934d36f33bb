"""Dependency scanning speed against its targets.

Run: python benchmarks/bench_deps.py [--repeat N] [--skip-update]

1. 500 exact pins against the bundled PyPA snapshot, cold and warm (issue 4): warm
   <= 0.5 s (index built), cold <= 2 s (empty cache folder, so the time includes building
   the index). Scans run with --offline: the automatic refresh is measured in 2.
2. `db update` of a 100 MB archive served from 127.0.0.1 (issue 12): <= 10 s including the
   index build. The archive is made of the snapshot's records copied under new ids and
   package names until it is 100 MB, compressed as OSV's all.zip is. The index is built by
   one worker process per CPU, so the CPU time (all processes) is printed beside the wall
   time: on a loaded machine the workers wait for CPUs.
3. Reading a 200,000-line requirements file (issue 12): <= 2 s, in a fresh process.

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

TARGETS = {"warm": 0.5, "cold": 2.0, "update": 10.0, "parse": 2.0}
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_ENV["QEGUARD_OFFLINE"] = "1"  # the scans never refresh here (see bench_update)
PINS = 500
ARCHIVE_BYTES = 100 * 1000 * 1000
LINES = 200_000

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
    cmd = [
        str(qeguard), "-q", "-C", str(repo), "deps", "--offline",
        "--format", "json", "--output", str(out),
    ]  # fmt: skip
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


_UPDATE = """
import sys, time
from qeguard.deps.update import update_database
t = time.perf_counter()
result = update_database(url=sys.argv[1])
print(f"{time.perf_counter() - t} {result.db.count} {result.downloaded}")
"""

_PARSE = """
import sys, time
from pathlib import Path
from qeguard.deps.model import TargetEnvironment
from qeguard.deps.sources import load_path
path = Path(sys.argv[1])
env = TargetEnvironment.for_target("3.12", "linux")
t = time.perf_counter()
deps = load_path(path, root=path.parent, env=env)
print(f"{time.perf_counter() - t} {len(deps)}")
"""


def write_archive(path: Path) -> int:
    """An OSV-style zip of at least ARCHIVE_BYTES: the snapshot's records again and again,
    each copy under a new id and package name (so the index holds that many packages)."""
    import json
    import zipfile

    from qeguard.deps.database import embedded_path

    with zipfile.ZipFile(embedded_path()) as zf:
        records = [json.loads(zf.read(n)) for n in zf.namelist()]
    count = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        copy = 0
        while path.stat().st_size < ARCHIVE_BYTES:
            for rec in records:
                rec = dict(rec, id=f"{rec['id']}-C{copy}")
                rec["affected"] = [
                    {**a, "package": {**a["package"], "name": f"{a['package']['name']}-c{copy}"}}
                    for a in rec.get("affected") or ()
                ]
                out.writestr(f"{rec['id']}.json", json.dumps(rec))  # compact, as in the snapshot
                count += 1
            copy += 1
    return count


def bench_update(tmp: Path, repeat: int) -> tuple[float, float, int, int]:
    """Median seconds of `update_database` from a local HTTP server (wall, and CPU of the
    process and its workers), with its record count and the archive's size."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp / "served"
    served.mkdir()
    write_archive(served / "all.zip")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=served))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_port}/all.zip"
    times = []
    cpus = []
    records = size = 0
    try:
        for i in range(repeat):
            env = {k: v for k, v in _ENV.items() if k != "QEGUARD_OFFLINE"}
            env["QEGUARD_CACHE_DIR"] = str(tmp / f"update-{i}")
            cpu = _children_cpu()
            proc = subprocess.run(
                [sys.executable, "-c", _UPDATE, url], env=env, capture_output=True, text=True
            )
            cpus.append(_children_cpu() - cpu)
            if proc.returncode != 0:
                raise SystemExit(f"db update failed: {proc.stderr}")
            elapsed, records_s, size_s = proc.stdout.split()
            times.append(float(elapsed))
            records, size = int(records_s), int(size_s)
    finally:
        httpd.shutdown()
        httpd.server_close()
    return statistics.median(times), statistics.median(cpus), records, size


def write_requirements(path: Path) -> None:
    """LINES lines as compiled and hand-written files mix them: pins, comments, ranges,
    markers, extras and pins with hashes on continuation lines."""
    digest = "0" * 64
    lines = []
    n = 0
    while len(lines) < LINES:
        name = f"package-{n}"
        kind = n % 10
        if kind < 6:
            lines.append(f"{name}=={n % 50}.{n % 7}.{n % 13}")
        elif kind == 6:
            lines.append(f"# {name} is pinned by the platform team")
        elif kind == 7:
            lines.append(f"{name}[extra]>={n % 9}.0,<{n % 9 + 1}.0  # a range")
        elif kind == 8:
            lines.append(f'{name}=={n % 5}.1 ; python_version >= "3.8"')
        else:
            lines += [f"{name}=={n % 3}.0.1 \\", f"    --hash=sha256:{digest} \\",
                      f"    --hash=sha256:{digest}"]  # fmt: skip
        n += 1
    path.write_text("\n".join(lines[:LINES]) + "\n")


def bench_parse(tmp: Path, repeat: int) -> tuple[float, int]:
    path = tmp / "big" / "requirements.txt"
    path.parent.mkdir()
    write_requirements(path)
    times = []
    count = 0
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, "-c", _PARSE, str(path)], env=_ENV, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise SystemExit(f"parse failed: {proc.stderr}")
        elapsed, count_s = proc.stdout.split()
        times.append(float(elapsed))
        count = int(count_s)
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-update", action="store_true", help="skip the 100 MB update")
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
        parse_s, parsed = bench_parse(tmp, args.repeat)
        update = None if args.skip_update else bench_update(tmp, args.repeat)

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
    verdict = "PASS" if parse_s <= TARGETS["parse"] else "MISS"
    print(
        f"parse: {LINES} lines ({parsed} dependencies) in {parse_s:.3f} s "
        f"(target <= {TARGETS['parse']} s): {verdict}"
    )
    if update is not None:
        update_s, update_cpu, records, size = update
        verdict = "PASS" if update_s <= TARGETS["update"] else "MISS"
        print(
            f"update: {size / 1e6:.1f} MB archive, {records} records, downloaded and indexed "
            f"in {update_s:.3f} s wall ({update_cpu:.3f} s CPU) "
            f"(target <= {TARGETS['update']} s): {verdict}"
        )


if __name__ == "__main__":
    main()
