"""What the pre-commit hook loads: users pay every import on every commit.

`qeguard verify --staged` runs in a fresh interpreter over a real protected repository
with a staged change, and reports which modules it imported. The heavy packages the hook
never needs must stay out (docs/speed.md, "Imports").
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from helpers import CORE_FILE, KeyPair, Protected

# Modules the hook must not import: each costs milliseconds on every commit.
NOT_ON_THE_HOOK_PATH = (
    "git",  # gitpython: the hook runs git directly
    "pip_audit",
    "cyclonedx",
    "watchdog",
    "multiprocessing",
    "concurrent.futures",
    "packaging",
    # (tempfile is not here: a policy that extends a preset reads it through
    # importlib.resources, which imports tempfile.)
    "cryptography.hazmat.primitives.serialization",  # only for private keys
    "qeguard.deps",
    "qeguard.integrity.trees.scan",  # the whole-tree scan
    "qeguard.render.html",
    "qeguard.render.sarif",
)

_PROBE = """
import json, sys
from qeguard.cli.main import main
code = main(["verify", "--staged", "-q"])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def test_the_hook_imports_only_what_it_uses(repo: Path, keypair: Callable[..., KeyPair]) -> None:
    p = Protected.build(repo, [keypair("alice"), keypair("bob")])
    (repo / CORE_FILE).write_text("def predict(x):\n    return 3 * x\n", encoding="utf-8")
    p.git("add", CORE_FILE)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=repo, capture_output=True, text=True, check=False
    )
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    assert result["code"] == 1, proc.stdout  # the staged core change is caught
    assert CORE_FILE in proc.stdout
    loaded = set(result["modules"])
    offenders = sorted(
        m
        for m in loaded
        for banned in NOT_ON_THE_HOOK_PATH
        if m == banned or m.startswith(banned + ".")
    )
    assert offenders == []
