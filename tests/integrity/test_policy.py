"""Policies: presets, extends, tier assignment, digests and clear errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from qeguard.errors import ConfigError
from qeguard.integrity.policy import (
    PRESETS,
    OnChange,
    load_policy,
    parse_policy,
    policy_findings,
    preset_text,
    unmatched_patterns,
)
from qeguard.report import Severity
from qeguard.rules import RuleId


def _qemlflow() -> str:
    return 'extends = "qemlflow"\n'


@pytest.mark.parametrize("name", PRESETS)
def test_presets_parse(name: str) -> None:
    policy = parse_policy(preset_text(name), source=f"preset {name}")
    assert policy.tiers
    assert policy.strictest.threshold == max(t.threshold for t in policy.tiers)


def test_qemlflow_preset_is_the_issue_layout() -> None:
    policy = parse_policy(_qemlflow())
    core, middle, outer = policy.tiers
    assert (core.name, core.threshold, core.on_change) == ("core", 2, OnChange.BLOCK)
    assert core.patterns == (
        "src/*/__init__.py",
        "src/*/core/**",
        "pyproject.toml",
        "setup.py",
        "requirements*.txt",
        ".github/workflows/**",
        ".qeguard/**",
        ".pre-commit-config.yaml",
        ".gitattributes",
        ".gitmodules",
        "setup.cfg",
        "tox.ini",
        "conftest.py",
        "noxfile.py",
    )
    assert (middle.name, middle.threshold, middle.on_change) == ("middle", 1, OnChange.BLOCK)
    assert middle.patterns == (
        "src/**",
        "tests/**",
        "scripts/**",
        "tools/**",
        "Makefile",
        "Dockerfile",
    )
    assert (outer.name, outer.threshold, outer.on_change) == ("outer", 0, OnChange.WARN)
    assert outer.patterns == ("docs/**", "examples/**", "notebooks/**", "*.md")
    assert core.finding_severity is Severity.HIGH
    assert outer.finding_severity is Severity.LOW
    assert policy.strictest is core


@pytest.mark.parametrize(
    ("path", "tier"),
    [
        ("src/qemlflow/__init__.py", "core"),
        ("src/qemlflow/core/models.py", "core"),
        ("src/qemlflow/core/deep/x.py", "core"),
        ("pyproject.toml", "core"),
        ("setup.py", "core"),
        ("requirements.txt", "core"),
        ("requirements-dev.txt", "core"),
        (".github/workflows/ci.yml", "core"),
        (".qeguard/policy.toml", "core"),
        (".qeguard/trust.toml", "core"),
        (".qeguard/.gitignore", "core"),
        (".pre-commit-config.yaml", "core"),
        (".gitattributes", "core"),
        ("src/qemlflow/data/.gitattributes", "core"),
        (".gitmodules", "core"),
        ("setup.cfg", "core"),
        ("tox.ini", "core"),
        ("conftest.py", "core"),
        ("tests/unit/conftest.py", "core"),
        ("noxfile.py", "core"),
        ("src/qemlflow/sub/__init__.py", "middle"),
        ("src/qemlflow/utils.py", "middle"),
        ("src/README.md", "middle"),
        ("tests/test_x.py", "middle"),
        ("scripts/run.sh", "middle"),
        ("tools/x.py", "middle"),
        ("Makefile", "middle"),
        ("Dockerfile", "middle"),
        ("docs/index.rst", "outer"),
        ("examples/a.py", "outer"),
        ("notebooks/a.ipynb", "outer"),
        ("README.md", "outer"),
        ("notes/CHANGES.md", "outer"),
        ("random.txt", None),
        ("data/x.csv", None),
        (".qeguard/manifests/core.list", None),
        (".qeguard/manifests/core.dsse.json", None),
        (".qeguard/quarantine/x", None),
        (".git/config", None),
    ],
)
def test_qemlflow_tier_assignment(path: str, tier: str | None) -> None:
    assert parse_policy(_qemlflow()).matcher().tier_of(path) == tier


def test_config_files_always_in_the_strictest_tier() -> None:
    policy = parse_policy(
        '[[tiers]]\nname = "a"\nthreshold = 1\npatterns = ["src/**"]\n'
        '[[tiers]]\nname = "b"\nthreshold = 3\npatterns = ["ci/**"]\n'
    )
    m = policy.matcher()
    assert m.tier_of(".qeguard/policy.toml") == "b"
    assert m.tier_of(".qeguard/trust.toml") == "b"


def test_negated_patterns_work() -> None:
    policy = parse_policy('[[tiers]]\nname = "a"\npatterns = ["src/**", "!src/gen/**"]\n')
    m = policy.matcher()
    assert m.tier_of("src/x.py") == "a"
    assert m.tier_of("src/gen/x.py") is None


def test_extends_and_override_tiers() -> None:
    policy = parse_policy(
        'extends = "qemlflow"\nfail_on = "high"\n'
        '[[tiers]]\nname = "core"\nthreshold = 3\n'
        '[[tiers]]\nname = "vendor"\nthreshold = 1\npatterns = ["vendor/**"]\n'
        "[deps]\nrequire_pins = true\n"
    )
    assert [t.name for t in policy.tiers] == ["core", "middle", "outer", "vendor"]
    assert policy.tier("core").threshold == 3
    # An override keeps the preset's other settings for that tier.
    assert "src/*/core/**" in policy.tier("core").patterns
    assert policy.fail_on is Severity.HIGH
    assert policy.deps == {"fail_on": "high", "require_pins": True}
    assert policy.matcher().tier_of("vendor/lib.py") == "vendor"


def test_digest_binds_effective_policy() -> None:
    base = parse_policy(_qemlflow())
    # Comments and formatting do not change what the policy means, nor its digest.
    assert parse_policy("# a comment\nextends   =   'qemlflow'\n").sha256 == base.sha256
    narrowed = parse_policy(
        'extends = "qemlflow"\n[[tiers]]\nname = "core"\npatterns = ["setup.py"]\n'
    )
    assert narrowed.sha256 != base.sha256
    assert parse_policy(preset_text("qemlflow")).sha256 == base.sha256


def test_unknown_tier_lookup() -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(_qemlflow(), source="p.toml").tier("nope")
    assert "unknown tier 'nope'" in info.value.diagnostics()
    assert "core, middle, outer" in info.value.diagnostics()


def test_malformed_toml_names_file_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy('extends = "qemlflow"\n\n[[tiers]\nname = 1\n', source=".qeguard/policy.toml")
    text = info.value.diagnostics()
    assert text.startswith(".qeguard/policy.toml: malformed TOML")
    assert "line 3" in text


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('extends = "qemlflow"\ncolour = 1\n', ["unknown key(s) colour"]),
        ('[[tiers]]\nname = "a"\nthreshold = -1\n', ["tiers[0].threshold", "-1"]),
        ('[[tiers]]\nname = "a"\nthreshold = "two"\n', ["tiers[0].threshold", "'two'"]),
        ('[[tiers]]\nname = "a"\nthreshold = true\n', ["tiers[0].threshold"]),
        ('[[tiers]]\nname = "a"\nthreshold = 1.5\n', ["tiers[0].threshold"]),
        ('[[tiers]]\nname = "a"\non_change = "stop"\n', ["tiers[0].on_change", "'stop'"]),
        ('[[tiers]]\nname = "a"\nattributes = ["size"]\n', ["unknown attribute 'size'"]),
        ('[[tiers]]\nname = "a"\npatterns = "src/**"\n', ["tiers[0].patterns"]),
        ('[[tiers]]\nname = "a"\npatterns = [""]\n', ["tiers[0].patterns"]),
        ('[[tiers]]\nname = "a"\ncolor = 1\n', ["tiers[0]: unknown key(s) color"]),
        ('[[tiers]]\nname = "Bad Name"\n', ["tiers[0].name"]),
        ('[[tiers]]\nname = "a"\n[[tiers]]\nname = "a"\n', ["duplicate tier 'a'"]),
        ('fail_on = "catastrophic"\n[[tiers]]\nname = "a"\n', ["fail_on"]),
        ('expires_days = 0\n[[tiers]]\nname = "a"\n', ["expires_days"]),
        ('deps = 3\n[[tiers]]\nname = "a"\n', ["deps: must be a table"]),
        ("fail_on = 'low'\n", ["at least one [[tiers]]"]),
        ('extends = "nope"\n', ["unknown preset 'nope'"]),
        ("extends = 3\n", ["`extends` must be a preset name"]),
        ('extends = "qemlflow"\ntiers = 3\n', ["`tiers` must be an array"]),
        ('extends = "qemlflow"\n[[tiers]]\nthreshold = 3\n', ["needs a `name`"]),
    ],
)
def test_invalid_policy_names_the_field(text: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, source=".qeguard/policy.toml")
    diag = info.value.diagnostics()
    for needle in needles:
        assert needle in diag


def test_all_errors_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy('bogus = 1\n[[tiers]]\nname = "a"\nthreshold = -2\non_change = "x"\n')
    diag = info.value.diagnostics()
    assert "bogus" in diag and "threshold" in diag and "on_change" in diag


@pytest.mark.parametrize("value", ['"config/guard.toml"', '"../outside.toml"', "3"])
def test_a_custom_policy_location_is_refused_not_followed(
    tmp_path: Path, write: Callable[[Path, dict[str, str | bytes]], None], value: str
) -> None:
    # The working tree must never choose where policy and trust are read from.
    write(
        tmp_path,
        {
            "pyproject.toml": f"[tool.qeguard]\npolicy = {value}\n",
            "config/guard.toml": _qemlflow(),
        },
    )
    with pytest.raises(ConfigError, match="custom policy location is not supported") as info:
        load_policy(tmp_path)
    assert "tool.qeguard.policy" in info.value.diagnostics()


def test_missing_policy(tmp_path: Path) -> None:
    assert load_policy(tmp_path, required=False) is None
    with pytest.raises(ConfigError, match="no policy found"):
        load_policy(tmp_path)


def test_cli_malformed_policy_is_exit_2_without_traceback(
    repo: Path, run_cli: Any, keypair: Any
) -> None:
    (repo / ".qeguard").mkdir()
    (repo / ".qeguard/policy.toml").write_text('extends = "qemlflow"\n[[tiers]\nx\n')
    for args in (["verify"], ["sign", "--key", keypair("alice").private]):
        r = run_cli(*args, cwd=repo)
        assert r.code == 2, (args, r)
        assert ".qeguard/policy.toml" in r.err and "line 2" in r.err
        assert "Traceback" not in r.err


def test_cli_unknown_tier_is_exit_2(repo: Path, run_cli: Any, keypair: Any) -> None:
    assert run_cli("init", "--preset", "qemlflow", cwd=repo).code == 0
    key = keypair("alice")
    r = run_cli("trust", "add", "alice", key.public, "--tiers", "core,nope", cwd=repo)
    assert r.code == 2 and "unknown tier(s) nope" in r.err and "--tiers" in r.err
    r = run_cli("sign", "--key", key.private, "--tier", "nope", cwd=repo)
    assert r.code == 2 and "unknown tier 'nope'" in r.err


_OWN = """extends = "qemlflow"

[[tiers]]
name = "core"
patterns = ["src/*/core/**", "src/*/cor/**", "!src/*/core/skip.py", ".qeguard/**"]

[[tiers]]
name = "extra"
threshold = 1
patterns = ["data/**", "models/*.pt"]
"""


def test_own_patterns_are_those_the_file_writes() -> None:
    policy = parse_policy(_OWN)
    assert policy.own_patterns == {
        "core": ("src/*/core/**", "src/*/cor/**", "!src/*/core/skip.py", ".qeguard/**"),
        "extra": ("data/**", "models/*.pt"),
    }
    # A preset's patterns are not the repository's own: a repository without notebooks
    # is no typo.
    assert parse_policy('extends = "qemlflow"\n').own_patterns == {}
    # The provenance is no part of what is signed.
    assert parse_policy(_OWN).sha256 == policy.sha256


def test_unmatched_patterns_in_one_pass() -> None:
    policy = parse_policy(_OWN)
    paths = ["src/pkg/core/a.py", ".qeguard/policy.toml", "models/net.pt", "README.md"]
    assert unmatched_patterns(policy, paths) == {"core": ["src/*/cor/**"], "extra": ["data/**"]}
    # One path may be the first match of several patterns.
    assert (
        unmatched_patterns(
            policy, ["data/x", "src/a/cor/b", "src/a/core/c", ".qeguard/x", "models/a.pt"]
        )
        == {}
    )
    # The manifests never count as matches (they are never protected).
    only_manifests = unmatched_patterns(policy, [".qeguard/manifests/core.list"])
    assert ".qeguard/**" in only_manifests["core"]


def test_policy_findings_name_the_tier_and_what_to_do() -> None:
    policy = parse_policy(_OWN)
    found = policy_findings(policy, {"core": 1, "middle": 1, "extra": 3}, ["data/a"])
    unreachable = [f for f in found if f.rule == RuleId.SIG_UNREACHABLE]
    assert [f.tier for f in unreachable] == ["core"]
    assert "needs 2 distinct signer(s) but 1 key(s)" in unreachable[0].message
    assert all(f.severity is Severity.LOW for f in found)
    unmatched = sorted(str(f.details["id"]) for f in found if f.rule == RuleId.INT_UNMATCHED)
    assert unmatched == [".qeguard/**", "models/*.pt", "src/*/cor/**", "src/*/core/**"]
    # Fingerprints tell the patterns apart.
    assert len({f.fingerprint for f in found}) == len(found)
    # Without the tree (a hook's staged check) only the threshold is judged.
    assert {f.rule for f in policy_findings(policy, {}, None)} == {RuleId.SIG_UNREACHABLE}
