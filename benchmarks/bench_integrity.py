#!/usr/bin/env python3
"""Time `qeguard verify` and `qeguard sign` against sha256sum, b3sum and AIDE (issue 2).

usage: bench_integrity.py [--files N] [--tree DIR] [--work DIR] [--runs N] [--qeguard CMD]

Builds (or reuses) a tree from mktree.py in a work folder outside the repository,
commits it to git, protects it with a one-tier policy (threshold 1), signs it, warms
the page cache, then times every tool on the same files (best of --runs) and prints
the figures, the ratios and the targets with PASS or MISS. Anchors that are not
installed (b3sum, aide) are reported as skipped.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


@dataclass(frozen=True, kw_only=True, slots=True)
class Timing:
    best: float
    runs: list[float]
    peak_kib: int = 0


def default_work() -> Path:
    if Path("/work").is_dir() and os.access("/work", os.W_OK):
        return Path("/work/bench-work")
    return Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "qeguard-bench"


def run(
    cmd: list[str],
    cwd: Path,
    *,
    check: bool = True,
    quiet: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    out = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=quiet)
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
            if not path.startswith(".qeguard/"):
                paths.append(path)
    return paths


def timed(
    label: str,
    cmd: list[str],
    cwd: Path,
    runs: int,
    *,
    measure_rss: bool = False,
    ok: tuple[int, ...] = (0,),
) -> Timing:
    times: list[float] = []
    peak = 0
    for i in range(runs):
        argv = cmd
        rss_file = None
        if measure_rss and shutil.which("/usr/bin/time"):
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
        times.append(elapsed)
        if rss_file is not None:
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", rss_file.read_text())
            rss_file.unlink()
            if m:
                peak = max(peak, int(m.group(1)))
        print(f"  {label}: run {i + 1}: {elapsed:.3f} s", flush=True)
    return Timing(best=min(times), runs=times, peak_kib=peak)


def aide_conf(tree: Path, folder: Path) -> Path:
    root = re.escape(str(tree))
    conf = folder / "aide.conf"
    conf.write_text(
        f"database_in=file:{folder}/aide.db\n"
        f"database_out=file:{folder}/aide.db.new\n"
        "gzip_dbout=no\n"
        "report_url=stdout\n"
        "Bench = p+i+n+u+g+s+m+c+sha256\n"
        f"{root} Bench\n"
        f"!{root}/\\.git($|/)\n"
        f"!{root}/\\.qeguard($|/)\n",
        encoding="utf-8",
    )
    return conf


def size_pack_kib(tree: Path) -> int:
    git(tree, "gc", "-q")
    fields = dict(line.split(": ", 1) for line in git(tree, "count-objects", "-v").splitlines())
    return int(fields["size-pack"]) + int(fields["size"])


def poke(path: Path, tag: int) -> None:
    """Change a file's content in place, keeping its size."""
    with open(path, "r+b") as f:
        f.write(f"{tag:08d}".encode()[:8])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=100_000, help="files in the generated tree")
    ap.add_argument("--tree", type=Path, help="reuse this tree (made by mktree.py)")
    ap.add_argument(
        "--work",
        type=Path,
        default=default_work(),
        help="work folder (default /work/bench-work or $TMPDIR/qeguard-bench)",
    )
    ap.add_argument("--runs", type=int, default=3, help="best of N (default 3)")
    ap.add_argument(
        "--qeguard",
        default=shutil.which("qeguard") or str(Path(sys.executable).with_name("qeguard")),
        help="qeguard command",
    )
    ap.add_argument("--skip-growth", action="store_true", help="skip the git gc step")
    a = ap.parse_args()
    qeguard = shlex.split(a.qeguard)
    work = a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    tree = (a.tree or work / f"tree-{a.files}").resolve()
    repo_root = HERE.parent
    if tree == repo_root or repo_root in tree.parents:
        sys.exit("the tree must not be inside the qeguard repository")
    make_tree(tree, a.files)
    key = protect(tree, work, qeguard)

    files = regular_files(tree)
    total = sum((tree / p).stat().st_size for p in files)
    sums = work / f"{tree.name}.sha256"
    listing = work / f"{tree.name}.files0"
    listing.write_bytes(b"".join(os.fsencode(p) + b"\0" for p in files))
    print(
        f"{len(files)} regular files, {total / MIB:.0f} MiB; warming the page cache ...", flush=True
    )
    with open(listing, "rb") as src, open(sums, "wb") as dst:
        subprocess.run(
            ["xargs", "-0", "sha256sum", "--"], stdin=src, stdout=dst, cwd=tree, check=True
        )

    results: dict[str, Timing | None] = {}
    print("timing ...", flush=True)
    results["sha256sum -c"] = timed(
        "sha256sum -c", ["sha256sum", "--quiet", "-c", str(sums)], tree, a.runs
    )
    results["b3sum -c"] = None
    if shutil.which("b3sum"):
        b3 = work / f"{tree.name}.b3"
        with open(listing, "rb") as src, open(b3, "wb") as dst:
            subprocess.run(
                ["xargs", "-0", "b3sum", "--"], stdin=src, stdout=dst, cwd=tree, check=True
            )
        results["b3sum -c"] = timed("b3sum -c", ["b3sum", "--quiet", "-c", str(b3)], tree, a.runs)
    results["aide --check"] = None
    if shutil.which("aide"):
        aide_dir = work / "aide"
        shutil.rmtree(aide_dir, ignore_errors=True)
        aide_dir.mkdir()
        conf = aide_conf(tree, aide_dir)
        run(["aide", "-c", str(conf), "--init"], tree)
        (aide_dir / "aide.db.new").rename(aide_dir / "aide.db")
        results["aide --check"] = timed(
            "aide --check", ["aide", "-c", str(conf), "--check"], tree, a.runs
        )
    run([*qeguard, "-C", str(tree), "-q", "verify"], tree)  # warm imports, and must pass
    results["qeguard verify"] = timed(
        "qeguard verify",
        [*qeguard, "-C", str(tree), "-q", "verify"],
        tree,
        a.runs,
        measure_rss=True,
    )
    # sha256sum over the same files, for the sign ratio (one process per xargs batch).
    results["sha256sum"] = timed(
        "sha256sum",
        ["sh", "-c", f"xargs -0 sha256sum -- < {shlex.quote(str(listing))} > /dev/null"],
        tree,
        a.runs,
    )
    # A full re-manifest: a file changes before each run, so sign hashes everything and
    # writes a new payload.
    target = tree / files[len(files) // 2]
    counter = iter(range(1, 1_000_000))
    sign_cmd = [*qeguard, "-C", str(tree), "-q", "sign", "--key", str(key)]
    sign_times: list[float] = []
    sign_peak = 0
    for _ in range(a.runs):
        poke(target, next(counter) + int(time.time()))
        t = timed("qeguard sign", sign_cmd, tree, 1, measure_rss=True)
        sign_times.append(t.best)
        sign_peak = max(sign_peak, t.peak_kib)
    results["qeguard sign"] = Timing(best=min(sign_times), runs=sign_times, peak_kib=sign_peak)

    growth: int | None = None
    if not a.skip_growth:
        print("repository growth (git gc twice; slow on the first run) ...", flush=True)
        git(tree, "add", "-A")
        git(tree, "commit", "-q", "-m", "bench: sign runs")
        before = size_pack_kib(tree)
        poke(tree / files[len(files) // 3], int(time.time()))
        run(sign_cmd, tree)
        git(tree, "add", "-A")
        git(tree, "commit", "-q", "-m", "bench: change one file")
        growth = size_pack_kib(tree) - before
        print(f"  size-pack+loose {before} KiB -> {before + growth} KiB", flush=True)

    report(results, growth, len(files), total, a.runs)


def report(
    r: dict[str, Timing | None], growth: int | None, nfiles: int, total: int, runs: int
) -> None:
    def best(name: str) -> float | None:
        t = r.get(name)
        return t.best if t else None

    print()
    print(
        f"tree: {nfiles} regular files, {total / MIB:.0f} MiB; best of {runs}; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'command':<16} {'best s':>8}  {'MB/s':>7}  runs")
    for name, t in r.items():
        if t is None:
            print(f"{name:<16} {'skipped (not installed)':>8}")
            continue
        rate = total / t.best / 1e6
        print(f"{name:<16} {t.best:>8.3f}  {rate:>7.0f}  " + " ".join(f"{x:.3f}" for x in t.runs))
    print()
    rows: list[tuple[str, str, str, bool | None]] = []

    def ratio(label: str, num: str, den: str, limit: float) -> None:
        n, d = best(num), best(den)
        if n is None or d is None:
            rows.append((label, "n/a", f"<= {limit:g}", None))
            return
        q = n / d
        rows.append((label, f"{q:.3f}", f"<= {limit:g}", q <= limit))

    ratio("verify / sha256sum -c", "qeguard verify", "sha256sum -c", 0.4)
    ratio("verify / b3sum -c (stretch)", "qeguard verify", "b3sum -c", 1.0)
    ratio("verify / aide --check", "qeguard verify", "aide --check", 0.08)
    ratio("sign / sha256sum", "qeguard sign", "sha256sum", 0.6)
    verify_t, sign_t = r.get("qeguard verify"), r.get("qeguard sign")
    peak = max(verify_t.peak_kib if verify_t else 0, sign_t.peak_kib if sign_t else 0)
    if peak:
        vp = verify_t.peak_kib / 1024 if verify_t else 0
        sp = sign_t.peak_kib / 1024 if sign_t else 0
        rows.append(
            (
                f"peak RSS MiB (verify {vp:.0f}, sign {sp:.0f})",
                f"{peak / 1024:.0f}",
                "<= 300",
                peak / 1024 <= 300,
            )
        )
    else:
        rows.append(("peak RSS MiB", "n/a (no /usr/bin/time)", "<= 300", None))
    if growth is None:
        rows.append(("repo growth KiB, 1 file changed", "skipped", "<= 16", None))
    else:
        rows.append(("repo growth KiB, 1 file changed", str(growth), "<= 16", growth <= 16))
    print(f"{'target':<36} {'value':>8}  {'goal':>7}  result")
    for label, value, goal, ok in rows:
        verdict = "n/a" if ok is None else ("PASS" if ok else "MISS")
        print(f"{label:<36} {value:>8}  {goal:>7}  {verdict}")


if __name__ == "__main__":
    main()
