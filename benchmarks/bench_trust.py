#!/usr/bin/env python3
"""Trust-walk benchmark: establishing trust over a long history.

usage: python benchmarks/bench_trust.py [--commits 10000] [--changes 50] [--runs 7] [--dir DIR]

Builds (with `git fast-import`, in seconds) a first-parent history of --commits commits
with real keys and real signed manifests: a `core` tier (threshold 2, `.qeguard/**`) and
a `middle` tier (threshold 1, `src/**`). Every commit changes a file; every tenth changes
a protected one and re-signs `middle`; --changes commits change trust.toml, each approved
in the same commit by the two core signers. Then it times, warm, the median of --runs
runs of the walk that every verification starts with (`trust_source.establish`), from a
pinned root (what CI does) and from the first commit with `.qeguard/` (trust on first
use), and prints each next to the target: well under a second, 0.3 s.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from qeguard.git import GitRepo
from qeguard.integrity.dsse import PAYLOAD_TYPE, Envelope, Signature
from qeguard.integrity.keys import SigningKey, generate, load_signing_key
from qeguard.integrity.manifest import Entry, Kind, format_list, new_payload
from qeguard.integrity.policy import parse_policy
from qeguard.integrity.trust_source import establish

TARGET_S = 0.3
POLICY = """\
fail_on = "medium"

[[tiers]]
name = "core"
threshold = 2
patterns = [".qeguard/**"]

[[tiers]]
name = "middle"
threshold = 1
patterns = ["src/**"]
"""
SRC_FILES = 50


def _keys(folder: Path) -> list[tuple[str, SigningKey, str]]:
    out = []
    for name in ("alice", "bob"):
        private, line = generate(name, None)
        path = folder / name
        path.write_bytes(private)
        path.chmod(0o600)
        out.append((name, load_signing_key(path), line))
    return out


def _trust(keys: list[tuple[str, SigningKey, str]], revision: int) -> bytes:
    lines = [f"# revision {revision}"]
    for name, _, line in keys:
        lines += ["[[signers]]", f'name = "{name}"', f'key = "{line}"', 'tiers = ["*"]', ""]
    return "\n".join(lines).encode()


def _envelope(
    tier: str, seq: int, list_bytes: bytes, count: int, signers: list[SigningKey]
) -> bytes:
    payload = new_payload(
        tier=tier,
        sequence=seq,
        list_bytes=list_bytes,
        count=count,
        policy_sha256=parse_policy(POLICY).sha256,
        now=datetime.now(UTC),
        expires_days=180,
    )
    env = Envelope(payload_type=PAYLOAD_TYPE, payload=payload.to_bytes())
    for k in signers:
        env = env.with_signature(Signature(keyid=k.public.keyid, sig=k.sign(env.pae)))
    return env.to_bytes()


def _entry(path: str, data: bytes) -> Entry:
    return Entry(path=path, sha256=hashlib.sha256(data).hexdigest(), mode="100644", kind=Kind.FILE)


def build(root: Path, commits: int, changes: int) -> None:
    marker = root / ".git" / f"qeguard-bench-{commits}-{changes}"
    if marker.exists():
        return
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    keys = _keys(Path(tempfile.mkdtemp(prefix="qeguard-bench-keys-")))
    signers = [k for _, k, _ in keys]
    every = max(commits // (changes + 1), 1)
    src = {f"src/f{i}.py": f"X = {i}\n".encode() for i in range(SRC_FILES)}
    core_seq = middle_seq = 0
    stream: list[bytes] = []

    def blob(path: str, data: bytes) -> None:
        stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))

    def sign_core(trust: bytes) -> None:
        nonlocal core_seq
        core_seq += 1
        lst = format_list(
            [_entry(".qeguard/policy.toml", POLICY.encode()), _entry(".qeguard/trust.toml", trust)]
        )
        blob(".qeguard/manifests/core.list", lst)
        blob(".qeguard/manifests/core.dsse.json", _envelope("core", core_seq, lst, 2, signers))

    def sign_middle() -> None:
        nonlocal middle_seq
        middle_seq += 1
        lst = format_list(_entry(p, d) for p, d in src.items())
        blob(".qeguard/manifests/middle.list", lst)
        blob(
            ".qeguard/manifests/middle.dsse.json",
            _envelope("middle", middle_seq, lst, len(src), signers[:1]),
        )

    done = 0
    for i in range(commits):
        stream.append(b"commit refs/heads/main\n")
        stream.append(
            b"committer Bench <bench@example.invalid> %d +0000\n" % (1_700_000_000 + i * 60)
        )
        stream.append(b"data 10\ncommit %03d\n" % (i % 1000))
        if i == 0:
            blob(".qeguard/policy.toml", POLICY.encode())
            trust = _trust(keys, 0)
            blob(".qeguard/trust.toml", trust)
            sign_core(trust)
            for p, d in src.items():
                blob(p, d)
            sign_middle()
        elif done < changes and i % every == 0:
            done += 1
            trust = _trust(keys, done)
            blob(".qeguard/trust.toml", trust)
            sign_core(trust)  # approved by both in the same commit
        elif i % 10 == 0:
            path = f"src/f{i % SRC_FILES}.py"
            src[path] = f"X = {i}\n".encode()
            blob(path, src[path])
            sign_middle()
        else:
            blob(f"notes/n{i % 100}.txt", b"%d\n" % i)
        stream.append(b"\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=b"".join(stream), check=True)
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=root, check=True)
    marker.write_text("ready\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "qeguard-bench-trust")
    args = ap.parse_args()
    start = time.monotonic()
    build(args.dir, args.commits, args.changes)
    repo = GitRepo(args.dir)
    head = repo.head()
    assert head is not None
    first = repo._run("rev-list", "--max-parents=0", head).decode().split()[0]
    print(
        f"repository: {args.commits} commits, {args.changes} trust changes ({args.dir}); "
        f"ready in {time.monotonic() - start:.1f} s"
    )
    ok = True
    for label, root in (("pinned root", first), ("trust on first use", None)):
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            found = establish(GitRepo(args.dir), head, root=root, root_reason="bench", base=None)
            times.append(time.perf_counter() - t0)
        chain = found.chain
        assert chain is not None and not found.findings
        approved = len(chain.state.approved)
        median = statistics.median(times)
        verdict = "PASS" if median <= TARGET_S and approved == args.changes else "MISS"
        ok = ok and verdict == "PASS"
        print(
            f"walk ({label}): median {median * 1000:7.1f} ms (min {min(times) * 1000:.1f}); "
            f"{approved}/{args.changes} changes approved; "
            f"target <= {TARGET_S * 1000:.0f} ms: {verdict}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
