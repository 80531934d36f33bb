#!/usr/bin/env python3
"""The guard report on a real project with many findings (issue 11's "done when").

Run: python benchmarks/bench_report.py [--files 50000] [--repeat 3] [--keep]

Builds a git repository with a requirements file of 30 old pins (also read through a
`-r requirements/base.txt` include, so every pin is declared twice) and a tree of
--files protected files (source tier, block; docs tier, warn), signs it, changes a third
of the files, and runs `qeguard ci` once with every format (GITHUB_ACTIONS=true, so the
step summary and annotations are produced too). Then checks each output as its consumer
would and prints PASS/FAIL per check:

- JSON: the report's own JSON Schema; SARIF: the SARIF 2.1.0 schema in tests/data;
  JUnit: junitparser; HTML: the embedded data parses; every fingerprint appears once;
- caps: SARIF <= 25,000 results with a notification naming how many were left out,
  Markdown and the step summary <= 1 MiB with a line saying what was left out, the HTML
  page holds one page of rows; the Markdown shows advisory ids linked to osv.dev;
- stdout stays the report's own (annotations on stderr);
- the HTML page in headless Chromium (Debian's `chromium`): the median of --repeat loads,
  as the wall time of `chromium --dump-dom` and as the time the page's own script
  reports it was done (`data-ready-ms`, from navigation start); target under 3 s. An
  empty page is timed too, as the browser's own start-up cost.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.report_samples import OLD_PINS  # noqa: E402

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
HTML_TARGET_S = 3.0
FORMATS = {"json": "r.json", "sarif": "r.sarif", "markdown": "r.md", "junit": "r.xml"}
FORMATS |= {"html": "r.html", "text": "r.txt"}
BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
results: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    results.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {name}{'  ' + detail if detail else ''}", flush=True)


def run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **GIT_ENV, **(env or {})}, capture_output=True, text=True
    )


def must(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    out = run(cmd, cwd, env)
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return out.stdout


def qeguard(*args: str) -> list[str]:
    return [str(BIN / "qeguard"), *args]


def build(work: Path, files: int) -> Path:
    from qeguard.integrity.keys import generate

    repo = work / "project"
    repo.mkdir(parents=True)
    must(["git", "init", "-q", "-b", "main"], repo)
    must(["git", "config", "core.autocrlf", "false"], repo)
    (repo / "requirements").mkdir()
    pins = "\n".join(OLD_PINS) + "\n"
    (repo / "requirements" / "base.txt").write_text(pins)
    (repo / "requirements.txt").write_text("-r requirements/base.txt\n" + pins)
    for i in range(files):
        top = "docs" if i % 5 == 4 else "src"
        d = repo / top / f"pkg{i % 37:02d}" / f"mod{i % 211:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.{'md' if top == 'docs' else 'py'}").write_text(f"# file {i}\nA = {i}\n")
    keys = work / "keys"
    keys.mkdir(mode=0o700)
    private, line = generate("bench", None)
    (keys / "bench").write_bytes(private)
    os.chmod(keys / "bench", 0o600)
    (keys / "bench.pub").write_text(line + "\n")
    must(qeguard("init", "--preset", "default"), repo)
    must(qeguard("trust", "add", "bench", str(keys / "bench.pub"), "--tiers", "*"), repo)
    t = time.perf_counter()
    must(qeguard("sign", "--key", str(keys / "bench")), repo)
    print(f"signed {files} files in {time.perf_counter() - t:.1f}s", flush=True)
    must(["git", "add", "-A"], repo)
    must(["git", "commit", "-qm", "protected"], repo)
    changed = 0
    for path in sorted(p for p in (repo / "src").rglob("*") if p.is_file()) + sorted(
        p for p in (repo / "docs").rglob("*") if p.is_file()
    ):
        if changed % 3 == 0:
            path.write_text(path.read_text() + "B = 1\n")
        changed += 1
    print(f"changed {len(range(0, changed, 3))} of {changed} files", flush=True)
    return repo


def fingerprints_unique(name: str, fps: list[str], expected: int | None = None) -> None:
    detail = f"{len(fps)} fingerprints, {len(set(fps))} distinct"
    ok = len(fps) == len(set(fps)) and (expected is None or len(fps) == expected)
    check(f"{name}: no duplicate fingerprints", ok, detail)


def validate(out: Path, stdout: str, stderr: str, summary: Path) -> Path:
    import jsonschema
    from junitparser import JUnitXml
    from qeguard.render import MARKDOWN_LIMIT
    from qeguard.render.html import PAGE
    from qeguard.render.json import schema
    from qeguard.render.sarif import MAX_RESULTS

    doc = json.loads((out / "r.json").read_text())
    t = time.perf_counter()
    errors = list(jsonschema.Draft202012Validator(schema()).iter_errors(doc))
    check("json: valid against report.schema.json", not errors, f"{time.perf_counter() - t:.1f}s")
    n = len(doc["findings"])
    fingerprints_unique("json", [f["fingerprint"] for f in doc["findings"]])
    vulns = [f for f in doc["findings"] if f["rule"] == "QG-DEP-VULN"]
    check(
        "json: each advisory of a pin once, with both declarations",
        all(len(f["also_at"]) == 1 for f in vulns) and len({f["package"] for f in vulns}) == 30,
        f"{len(vulns)} advisories over {len({f['package'] for f in vulns})} pins; {n} findings",
    )

    sarif = json.loads((out / "r.sarif").read_text())
    sarif_schema = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
    errors = list(jsonschema.Draft7Validator(sarif_schema).iter_errors(sarif))
    check("sarif: valid against the SARIF 2.1.0 schema", not errors)
    run_ = sarif["runs"][0]
    fingerprints_unique("sarif", [r["partialFingerprints"]["qeguard/v2"] for r in run_["results"]])
    left = run_["properties"]["leftOut"]
    notes = run_["invocations"][0].get("toolExecutionNotifications", [])
    check(
        f"sarif: at most {MAX_RESULTS} results, the rest named",
        len(run_["results"]) <= MAX_RESULTS
        and len(run_["results"]) + left == n
        and (left == 0 or f"{left} of {n} results left out" in notes[0]["message"]["text"]),
        f"{len(run_['results'])} results, {left} left out",
    )
    check(
        "sarif: no automationDetails (the upload's category decides)",
        "automationDetails" not in run_,
    )

    xml = JUnitXml.fromstring((out / "r.xml").read_text())
    fingerprints_unique(
        "junit", re.findall(r"fingerprint=([0-9a-f]+)", (out / "r.xml").read_text()), n
    )
    check(
        "junit: parsed by junitparser",
        xml.tests > 0,
        f"{xml.tests} cases, {xml.failures} failed, {xml.skipped} skipped",
    )

    md = (out / "r.md").read_bytes()
    active = sum(1 for f in doc["findings"] if f["suppressed"] is None)
    rows = md.count(b"\n| **") + md.count(b"\n| high |") + md.count(b"\n| low |")
    rows += md.count(b"\n| medium |") + md.count(b"\n| info |") + md.count(b"\n| unknown |")
    # A row for a large group of one rule's findings in a tier says how many it stands for.
    rows += sum(
        int(n) - 1 for n in re.findall(rb"\n\| [^|\n]+ \| [^|\n]+ \| - \| (\d+) findings: ", md)
    )
    cut = re.search(rb"(\d+) more findings not shown", md)
    shown_all = rows == active or (cut is not None and rows + int(cut.group(1)) == active)
    check(
        "markdown: under 1 MiB, every finding shown or counted as left out",
        len(md) <= MARKDOWN_LIMIT and shown_all,
        f"{len(md)} bytes, {rows} rows, {int(cut.group(1)) if cut else 0} left out",
    )
    links = re.findall(rb"\]\(https://osv\.dev/vulnerability/[A-Z0-9-]+\)", md)
    check("markdown: advisory ids linked to osv.dev", len(links) > 0, f"{len(links)} links")
    size = summary.stat().st_size
    check("step summary: under 1 MiB", size <= MARKDOWN_LIMIT, f"{size} bytes")

    page = (out / "r.html").read_text()
    block = page.split('id="qeguard-data">', 1)[1].split("</script>", 1)[0]
    rows = json.loads(block)["rows"]
    fingerprints_unique("html", [r[8] for r in rows], n)
    check(
        "html: one page of rows in the document",
        page.count("<tr data-fingerprint=") <= PAGE,
        f"{len(page.encode()) / 2**20:.1f} MiB",
    )
    check(
        "stdout: the text report only; annotations on stderr",
        "::" not in stdout and "::error " in stderr,
    )
    return out / "r.html"


def chromium_times(page: Path, work: Path, repeat: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        check(
            "html: renders in headless Chromium",
            False,
            "chromium not installed (apt-get install -y chromium)",
        )
        return
    empty = work / "empty.html"
    empty.write_text("<!DOCTYPE html><title>empty</title>")

    def load(target: Path, n: int) -> tuple[float, str]:
        profile = work / f"profile-{target.stem}-{n}"
        t = time.perf_counter()
        dom = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--dump-dom",
                target.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        return time.perf_counter() - t, dom

    walls, inpage, base = [], [], []
    for n in range(repeat):
        wall, dom = load(page, n)
        walls.append(wall)
        m = re.search(r'data-ready-ms="(\d+)"', dom)
        if m is None:
            check("html: the page's script ran", False)
            return
        inpage.append(int(m.group(1)) / 1000)
        base.append(load(empty, n)[0])
    wall, ready, start = (statistics.median(x) for x in (walls, inpage, base))
    check(
        f"html: renders in headless Chromium under {HTML_TARGET_S:.0f} s",
        wall - start < HTML_TARGET_S and ready < HTML_TARGET_S,
        f"median of {repeat}: process {wall:.2f}s (empty page {start:.2f}s), "
        f"script done at {ready:.2f}s after navigation start",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qeguard-bench-report-"))
    try:
        repo = build(work, a.files)
        out = work / "out"
        out.mkdir()
        summary = work / "summary.md"
        argv = ["ci", "--trust-ref", "HEAD"]
        for fmt, name in FORMATS.items():
            argv += ["--format", fmt, "--output", str(out / name)]
        argv += ["--format", "text"]
        t = time.perf_counter()
        res = run(
            qeguard(*argv), repo, {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
        )
        print(
            f"qeguard ci with 7 outputs: {time.perf_counter() - t:.1f}s, exit {res.returncode}",
            flush=True,
        )
        check(
            "qeguard ci exits 1 (findings)",
            res.returncode == 1,
            res.stderr[-300:] if res.returncode not in (0, 1) else "",
        )
        for name in FORMATS.values():
            print(f"  {name}: {(out / name).stat().st_size / 2**20:.1f} MiB")
        page = validate(out, res.stdout, res.stderr, summary)
        chromium_times(page, work, a.repeat)
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in results if not r[1]]
    print(f"\n{len(results) - len(failed)} of {len(results)} checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
