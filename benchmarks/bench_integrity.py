#!/usr/bin/env python3
"""Time `qeguard verify` and `qeguard sign` against the tools they replace (issue 13).

usage: bench_integrity.py [--sizes 20000,100000,300000] [--runs 5] [--work DIR]
                          [--qeguard CMD] [--skip aide,b3sum,...] [--growth]

For each size: builds (or reuses) a tree from mktree.py in a work folder outside the
repository, commits it to git, protects all of it with one tier (threshold 1), signs it
and commits, warms the page cache, then times as whole processes, interleaved run by run
and in the same run of this script, on the same files:

    sha256sum -c      (the checksum file of the tree's regular files)
    b3sum -c          (the same with BLAKE3: one file after another, a faster hash)
    aide --check      (sha256 and the usual attributes, databases in the work folder)
    git status        (what a developer runs; reads git's stat cache)
    qeguard verify    (every protected byte read and hashed: no cache of any kind)
    sha256sum         (over the same files: the anchor for signing)
    qeguard sign      (a full re-manifest: one file changes before each run)

and prints medians (of --runs, 5 by default), the per-file and per-MiB cost of verify at
each size, peak RSS (from /usr/bin/time -v), the ratios and the issue's targets with PASS
or MISS. A missing anchor is reported as missing, with the package that provides it. The
machine's load average is printed with every figure: timings taken while other jobs run
are not final, and qeguard (two worker processes) loses more to them than the anchors.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIB = 1 << 20
POLICY = """\
# One tier over the whole tree: the benchmark's worst case (every file protected).
fail_on = "medium"
expires_days = 180

[[tiers]]
name = "all"
threshold = 1
on_change = "block"
patterns = ["*"]
"""
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
# Changed before each `sign` run, so that each is a full re-manifest with a new payload;
# protected by qeguard, left out of the anchors' file lists (they would report it).
POKE = "bench-poke.txt"
# Where the anchors come from, for the message when one is missing (Debian names).
PACKAGES = {"b3sum": "b3sum", "aide": "aide", "sha256sum": "coreutils", "git": "git"}
# The targets of issue 13: (label, numerator, denominator, size, limit).
RATIO_TARGETS = [
    ("verify / sha256sum -c", "qeguard verify", "sha256sum -c", 20_000, 0.5),
    ("verify / sha256sum -c", "qeguard verify", "sha256sum -c", 100_000, 0.35),
    ("verify / b3sum -c", "qeguard verify", "b3sum -c", 100_000, 1.0),
    ("verify / sha256sum -c", "qeguard verify", "sha256sum -c", 300_000, 0.35),
    ("sign / sha256sum", "qeguard sign", "sha256sum", 20_000, 0.4),
    ("sign / sha256sum", "qeguard sign", "sha256sum", 100_000, 0.4),
]
RSS_TARGETS = {300_000: 200, 1_000_000: 300}  # MiB, peak of verify


@dataclass(frozen=True, kw_only=True, slots=True)
class Timing:
    runs: list[float]
    peak_kib: int = 0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


@dataclass(kw_only=True, slots=True)
class SizeResult:
    files: int  # regular files
    mib: float
    timings: dict[str, Timing | None] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # anchor -> why
    growth_kib: int | None = None


def default_work() -> Path:
    if Path("/work").is_dir() and os.access("/work", os.W_OK):
        return Path("/work/bench-work")
    return Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "qeguard-bench"


def run(
    cmd: list[str], cwd: Path, *, check: bool = True, quiet: bool = True
) -> subprocess.CompletedProcess[bytes]:
    out = subprocess.run(cmd, cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=quiet)
    if check and out.returncode != 0:
        sys.exit(
            f"failed ({out.returncode}): {shlex.join(cmd)}\n"
            f"{(out.stderr or b'').decode(errors='replace')[-2000:]}"
        )
    return out


def git(tree: Path, *args: str) -> str:
    return run(["git", *args], tree).stdout.decode()


def make_tree(tree: Path, files: int) -> None:
    if tree.exists():
        return
    print(f"generating {files} files in {tree} ...", flush=True)
    tmp = tree.with_name(tree.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    run(
        [sys.executable, str(HERE / "mktree.py"), str(tmp), "--files", str(files)],
        HERE,
        quiet=False,
    )
    tmp.rename(tree)


def protect(tree: Path, work: Path, qeguard: list[str]) -> Path:
    """git init + commit, one-tier policy, key, trust, sign, commit. Idempotent."""
    key = work / "bench.key"
    if not (tree / POKE).exists():
        (tree / POKE).write_text("00000000 changed before each sign run\n", encoding="utf-8")
    if not (tree / ".git").exists():
        print("git init + commit (slow on a large tree) ...", flush=True)
        git(tree, "init", "-q", "-b", "main")
        git(tree, "config", "gc.auto", "0")  # only the growth step packs, on purpose
        git(tree, "add", "-A")
        git(tree, "commit", "-q", "-m", "tree")
    if not (tree / ".qeguard" / "policy.toml").exists():
        run([*qeguard, "-C", str(tree), "init"], tree)
        (tree / ".qeguard" / "policy.toml").write_text(POLICY, encoding="utf-8")
        if not key.exists():
            run([*qeguard, "keygen", "--name", "bench", "--out", str(key)], tree)
        run(
            [*qeguard, "-C", str(tree), "trust", "add", "bench", f"{key}.pub", "--tiers", "all"],
            tree,
        )
    if git(tree, "status", "--porcelain"):
        print("signing and committing ...", flush=True)
        run([*qeguard, "-C", str(tree), "sign", "--key", str(key)], tree)
        git(tree, "add", "-A")
        git(tree, "commit", "-q", "-m", "sign")
    return key


def regular_files(tree: Path) -> list[str]:
    """Tracked regular files of the tree (what sha256sum, b3sum and AIDE read), without
    qeguard's own folder, as relative paths."""
    out = git(tree, "ls-files", "-z", "-s")
    paths = []
    for rec in out.split("\0"):
        if rec and not rec.startswith("120000"):
            path = rec.split("\t", 1)[1]
            if not path.startswith(".qeguard/") and path != POKE:
                paths.append(path)
    return paths


def load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def once(
    cmd: list[str], cwd: Path, *, measure_rss: bool, ok: tuple[int, ...] = (0,)
) -> tuple[float, int]:
    """One whole-process run: (wall seconds, peak RSS KiB or 0)."""
    argv = cmd
    rss_file = None
    if measure_rss and Path("/usr/bin/time").exists():
        rss_file = Path(tempfile.mkstemp(prefix="qg-rss-")[1])
        argv = ["/usr/bin/time", "-v", "-o", str(rss_file), *cmd]
    start = time.perf_counter()
    out = run(argv, cwd, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode not in ok:
        sys.exit(
            f"{shlex.join(cmd)} exited {out.returncode}:\n"
            f"{(out.stdout + out.stderr).decode(errors='replace')[-3000:]}"
        )
    peak = 0
    if rss_file is not None:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", rss_file.read_text())
        rss_file.unlink()
        peak = int(m.group(1)) if m else 0
    return elapsed, peak


def poke(path: Path, tag: int) -> None:
    """Change a file's content in place, keeping its size."""
    with open(path, "r+b") as f:
        f.write(f"{tag:08d}".encode()[:8])


def aide_regex(text: str) -> str:
    """`text` as a literal in AIDE's regular expressions. Not `re.escape`: AIDE starts its
    walk at the selection line's literal prefix, which an escaped "-" would cut short
    (it would then walk every tree next to this one)."""
    return "".join("\\" + c if c in ".^$*+?{}[]\\|()" else c for c in text)


def aide_conf(tree: Path, folder: Path) -> Path:
    root = aide_regex(str(tree))
    conf = folder / "aide.conf"
    conf.write_text(
        f"database_in=file:{folder}/aide.db\n"
        f"database_out=file:{folder}/aide.db.new\n"
        "gzip_dbout=no\n"
        "report_url=stdout\n"
        "Bench = p+i+n+u+g+s+m+c+sha256\n"
        f"{root}(/|$) Bench\n"
        f"!{root}/\\.git(/|$)\n"
        f"!{root}/\\.qeguard(/|$)\n"
        f"!{root}/{aide_regex(POKE)}$\n",
        encoding="utf-8",
    )
    return conf


def size_pack_kib(tree: Path) -> int:
    git(tree, "gc", "-q")
    fields = dict(line.split(": ", 1) for line in git(tree, "count-objects", "-v").splitlines())
    return int(fields["size-pack"]) + int(fields["size"])


def bench_size(files: int, a: argparse.Namespace, qeguard: list[str]) -> SizeResult:
    work: Path = a.work
    tree = (work / f"tree-{files}").resolve()
    if tree == HERE.parent or HERE.parent in tree.parents:
        sys.exit("the tree must not be inside the qeguard repository")
    make_tree(tree, files)
    key = protect(tree, work, qeguard)
    paths = regular_files(tree)
    total = sum((tree / p).stat().st_size for p in paths)
    result = SizeResult(files=len(paths), mib=total / MIB)
    listing = work / f"{tree.name}.files0"
    listing.write_bytes(b"".join(os.fsencode(p) + b"\0" for p in paths))
    print(f"\n== {len(paths)} regular files, {total / MIB:.0f} MiB ({tree})", flush=True)

    # Each anchor's command, after its one-time setup (which also warms the page cache).
    commands: dict[str, tuple[list[str], bool, tuple[int, ...]]] = {}
    skip = set(a.skip)

    def have(tool: str, name: str) -> bool:
        if name in skip or tool in skip:
            result.missing[name] = "skipped (--skip)"
            return False
        if shutil.which(tool) is None:
            result.missing[name] = f"not installed (apt-get install -y {PACKAGES[tool]})"
            return False
        return True

    if have("sha256sum", "sha256sum -c"):
        sums = work / f"{tree.name}.sha256"  # made again: the tree may have changed
        with open(listing, "rb") as src, open(sums, "wb") as dst:
            subprocess.run(["xargs", "-0", "sha256sum", "--"], stdin=src, stdout=dst, cwd=tree)
        commands["sha256sum -c"] = (["sha256sum", "--quiet", "-c", str(sums)], False, (0,))
    if have("b3sum", "b3sum -c"):
        b3 = work / f"{tree.name}.b3"
        with open(listing, "rb") as src, open(b3, "wb") as dst:
            subprocess.run(["xargs", "-0", "b3sum", "--"], stdin=src, stdout=dst, cwd=tree)
        commands["b3sum -c"] = (["b3sum", "--quiet", "-c", str(b3)], False, (0,))
    if have("aide", "aide --check"):
        aide_dir = work / f"aide-{files}"
        shutil.rmtree(aide_dir, ignore_errors=True)
        aide_dir.mkdir()
        conf = aide_conf(tree, aide_dir)
        print("aide --init (slow) ...", flush=True)
        run(["aide", "-c", str(conf), "--init"], tree)
        (aide_dir / "aide.db.new").rename(aide_dir / "aide.db")
        commands["aide --check"] = (["aide", "-c", str(conf), "--check"], False, (0,))
    if have("git", "git status"):
        commands["git status"] = (["git", "status"], False, (0,))
    commands["qeguard verify"] = ([*qeguard, "-C", str(tree), "-q", "verify"], True, (0,))
    if have("sha256sum", "sha256sum"):
        hash_all = f"xargs -0 sha256sum -- < {shlex.quote(str(listing))} > /dev/null"
        commands["sha256sum"] = (["sh", "-c", hash_all], False, (0,))

    # Warm the page cache and every tool's own files; verify must pass.
    with open(listing, "rb") as src:
        subprocess.run(["xargs", "-0", "cat", "--"], stdin=src, stdout=subprocess.DEVNULL, cwd=tree)
    for cmd, _, _ok in commands.values():
        run(cmd, tree, check=False)
    once(commands["qeguard verify"][0], tree, measure_rss=False)

    runs: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, int] = dict.fromkeys(commands, 0)
    loads: dict[str, list[float]] = {name: [] for name in commands}
    runs["qeguard sign"], peaks["qeguard sign"], loads["qeguard sign"] = [], 0, []
    target = tree / POKE
    sign_cmd = [*qeguard, "-C", str(tree), "-q", "sign", "--key", str(key)]
    for i in range(a.runs):
        # Interleaved: every tool sees the same machine state within a round.
        for name, (cmd, rss, ok) in commands.items():
            if name == "aide --check" and i >= a.aide_runs:
                continue
            loads[name].append(load())
            elapsed, peak = once(cmd, tree, measure_rss=rss, ok=ok)
            runs[name].append(elapsed)
            peaks[name] = max(peaks[name], peak)
        # A full re-manifest: a file changes first, so sign hashes everything and writes
        # a new payload.
        poke(target, i + int(time.time()))
        loads["qeguard sign"].append(load())
        elapsed, peak = once(sign_cmd, tree, measure_rss=True)
        runs["qeguard sign"].append(elapsed)
        peaks["qeguard sign"] = max(peaks["qeguard sign"], peak)
        line = "  ".join(f"{n} {runs[n][-1]:.3f}" for n in runs if len(runs[n]) > i)
        print(f"  run {i + 1}/{a.runs}: {line}  (load {load():.2f})", flush=True)
    for name, times in runs.items():
        result.timings[name] = Timing(
            runs=times, peak_kib=peaks[name], load=(min(loads[name]), max(loads[name]))
        )
    for name in result.missing:
        result.timings.setdefault(name, None)
    if a.growth:
        git(tree, "add", "-A")
        git(tree, "commit", "-q", "-m", "bench: sign runs")
        before = size_pack_kib(tree)
        poke(tree / POKE, int(time.time()))
        run(sign_cmd, tree)
        git(tree, "add", "-A")
        git(tree, "commit", "-q", "-m", "bench: change one file")
        result.growth_kib = size_pack_kib(tree) - before
    # Leave the tree as committed, so the next run starts clean.
    git(tree, "checkout", "-q", "--", ".")
    return result


def report(results: list[SizeResult], runs: int) -> bool:
    """Print every figure and target; True when every measured target passes."""
    print(f"\nmedians of {runs} whole-process runs, warm page cache; {os.cpu_count()} CPUs")
    for r in results:
        print(f"\n{r.files} regular files, {r.mib:.0f} MiB")
        print(f"  {'command':<16} {'median s':>9} {'min s':>7} {'MB/s':>6} {'peak MiB':>8}  load")
        for name, t in r.timings.items():
            if t is None:
                print(f"  {name:<16} {r.missing.get(name, 'missing')}")
                continue
            rate = r.mib * MIB / t.median / 1e6
            peak = f"{t.peak_kib / 1024:.0f}" if t.peak_kib else ""
            print(
                f"  {name:<16} {t.median:>9.3f} {min(t.runs):>7.3f} {rate:>6.0f} {peak:>8}"
                f"  {t.load[0]:.1f}-{t.load[1]:.1f}"
            )
        v = r.timings.get("qeguard verify")
        if v is not None:
            print(
                f"  verify cost: {v.median / r.files * 1e6:.1f} us per file, "
                f"{v.median / r.mib * 1e3:.2f} ms per MiB"
            )
        if r.growth_kib is not None:
            print(f"  repository growth, 1 file changed and re-signed: {r.growth_kib} KiB")

    rows: list[tuple[str, str, str, bool | None]] = []
    by_size = {r.files: r for r in results}

    def nearest(size: int) -> SizeResult | None:
        # mktree's trees hold a few symlinks: 100,000 files are 99,9xx regular ones.
        for files, r in by_size.items():
            if abs(files - size) <= size // 50:
                return r
        return None

    for label, num, den, size, limit in RATIO_TARGETS:
        r = nearest(size)
        if r is None:
            continue
        n, d = r.timings.get(num), r.timings.get(den)
        name = f"{label} @ {size // 1000}k"
        if n is None or d is None:
            rows.append((name, "n/a", f"<= {limit:g}", None))
            continue
        q = n.median / d.median
        rows.append((name, f"{q:.3f}", f"<= {limit:g}", q <= limit))
    for r in results:
        v, aide = r.timings.get("qeguard verify"), r.timings.get("aide --check")
        if v is not None and aide is not None:
            rows.append(
                (
                    f"verify / aide --check @ {r.files // 1000}k",
                    f"{v.median / aide.median:.3f}",
                    "",
                    None,
                )
            )
        g = r.timings.get("git status")
        if v is not None and g is not None:
            rows.append(
                (
                    f"verify / git status @ {r.files // 1000}k",
                    f"{v.median / g.median:.3f}",
                    "",
                    None,
                )
            )
    for size, limit in RSS_TARGETS.items():
        r = nearest(size)
        v = r.timings.get("qeguard verify") if r else None
        if v is None or not v.peak_kib:
            continue
        mib = v.peak_kib / 1024
        rows.append(
            (f"verify peak RSS MiB @ {size // 1000}k", f"{mib:.0f}", f"<= {limit}", mib <= limit)
        )
    measured = [(r.files, t.median) for r in results if (t := r.timings.get("qeguard verify"))]
    if len(measured) >= 3:
        # Linear in files: each added file costs no more as the tree grows (mktree's trees
        # fill their folders as they grow, so a file's share of folder work falls).
        measured.sort()
        marginal = [
            (t2 - t1) / (n2 - n1) * 1e6 for (n1, t1), (n2, t2) in itertools.pairwise(measured)
        ]
        growth = max(marginal) / marginal[0] if marginal[0] > 0 else float("inf")
        text = " ".join(f"{m:.1f}" for m in marginal)
        rows.append(("marginal us/file between sizes", text, "", None))
        rows.append(("linear: largest/first marginal", f"{growth:.2f}", "<= 1.3", growth <= 1.3))
    print(f"\n{'target':<40} {'value':>14}  {'goal':>7}  result")
    for label, value, goal, ok in rows:
        verdict = (
            "" if ok is None and not goal else ("n/a" if ok is None else ("PASS" if ok else "MISS"))
        )
        print(f"{label:<40} {value:>14}  {goal:>7}  {verdict}")
    return all(ok is not False for _, _, _, ok in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes",
        default="20000,100000,300000",
        help="tree sizes in files, comma-separated (the issue's: 10000,20000,100000,"
        "300000,1000000; default 20000,100000,300000)",
    )
    ap.add_argument("--runs", type=int, default=5, help="runs per tool (median; default 5)")
    ap.add_argument("--aide-runs", type=int, default=5, help="runs of AIDE (slow; default 5)")
    ap.add_argument(
        "--work",
        type=Path,
        default=default_work(),
        help="work folder (default /work/bench-work or $TMPDIR/qeguard-bench)",
    )
    ap.add_argument(
        "--qeguard",
        default=shutil.which("qeguard") or str(Path(sys.executable).with_name("qeguard")),
        help="qeguard command",
    )
    ap.add_argument(
        "--skip", default="", help="anchors to leave out, e.g. aide,b3sum (comma-separated)"
    )
    ap.add_argument("--growth", action="store_true", help="also measure repository growth")
    a = ap.parse_args()
    a.skip = [s for s in a.skip.split(",") if s]
    a.work = a.work.resolve()
    a.work.mkdir(parents=True, exist_ok=True)
    qeguard = shlex.split(a.qeguard)
    sizes = [int(s) for s in a.sizes.split(",") if s]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = [bench_size(n, a, qeguard) for n in sizes]
    ok = report(results, a.runs)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
