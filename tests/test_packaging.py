"""The distribution installs one import package, `qeguard`, with its data inside."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import tomllib
from importlib import resources

from helpers import PROJECT


def test_every_source_folder_is_an_installed_package() -> None:
    listed = set(
        tomllib.loads((PROJECT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"][
            "packages"
        ]
    )
    folders = {
        "qeguard" + "".join(f".{part}" for part in init.parent.relative_to(PROJECT / "guard").parts)
        for init in (PROJECT / "guard").rglob("__init__.py")
    }
    assert folders | {"qeguard.hooks", "qeguard.policies"} == listed


def test_nothing_installs_a_top_level_guard() -> None:
    assert importlib.util.find_spec("guard") is None
    files = importlib.metadata.files("qeguard") or []
    tops = {f.parts[0] for f in files if f.suffix == ".py" or f.name == "__init__.py"}
    assert "guard" not in tops


def test_presets_and_hooks_are_package_data() -> None:
    for preset in ("default", "strict", "qemlflow"):
        text = resources.files("qeguard.policies").joinpath(f"{preset}.toml").read_text("utf-8")
        assert "[[tiers]]" in text
    for hook in ("pre-commit", "pre-push"):
        assert resources.files("qeguard.hooks").joinpath(hook).read_bytes().startswith(b"#!")


def test_python_dash_m_qeguard() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "qeguard", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.startswith("qeguard "), proc
