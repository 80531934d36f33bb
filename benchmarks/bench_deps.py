"""500 exact pins against the bundled PyPA snapshot: cold (index built) and warm timings.

Run: python benchmarks/bench_deps.py   (targets: warm <= 0.5 s, cold <= 2 s)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["QEGUARD_CACHE_DIR"] = str(Path(tmp) / "cache")
        from guard.deps.database import open_database
        from guard.deps.interface import parse_version
        from guard.deps.scan import run_scan

        db = open_database()
        names = db.package_names()[:500]
        # Pin each package at a version its first record lists, so matching does real work.
        lines = []
        for n in names:
            listed = sorted(
                v for r in db.records_for(n) for a in r.affected for v in a.versions
                if parse_version(v) is not None and str(parse_version(v)) == v
            )
            lines.append(f"{n}=={listed[0] if listed else '1.0'}")
        repo = Path(tmp) / "repo"
        repo.mkdir()
        (repo / "requirements.txt").write_text("\n".join(lines) + "\n")
        for cache in ("cold", "warm"):
            if cache == "cold":
                os.environ["QEGUARD_CACHE_DIR"] = str(Path(tmp) / "cold-cache")
            t = time.perf_counter()
            result = run_scan(repo, None)
            elapsed = time.perf_counter() - t
            vulns = sum(1 for f in result.report.findings if f.rule == "QG-DEP-VULN")
            print(f"{cache}: {elapsed:.3f} s for {len(lines)} pins ({vulns} vulnerability "
                  f"findings)")


if __name__ == "__main__":
    main()
