"""Every rule qeguard can report, with the text SARIF and the docs show for it.

Rule ids are stable: code scanning, ignores and dashboards key on them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class RuleId(enum.StrEnum):
    """Every rule id qeguard reports, defined once; producers use these members."""

    INT_MODIFIED = "QG-INT-MODIFIED"
    INT_MISSING = "QG-INT-MISSING"
    INT_ADDED = "QG-INT-ADDED"
    INT_KIND = "QG-INT-KIND"
    INT_EXEC = "QG-INT-EXEC"
    INT_SYMLINK = "QG-INT-SYMLINK"
    INT_PATH = "QG-INT-PATH"
    INT_UNREADABLE = "QG-INT-UNREADABLE"
    INT_UNMATCHED = "QG-INT-UNMATCHED"
    SIG_MISSING = "QG-SIG-MISSING"
    SIG_MALFORMED = "QG-SIG-MALFORMED"
    SIG_BINDING = "QG-SIG-BINDING"
    SIG_THRESHOLD = "QG-SIG-THRESHOLD"
    SIG_EXPIRED = "QG-SIG-EXPIRED"
    SIG_POLICY = "QG-SIG-POLICY"
    SIG_ROLLBACK = "QG-SIG-ROLLBACK"
    SIG_UNREACHABLE = "QG-SIG-UNREACHABLE"
    TRUST_CHANGE = "QG-TRUST-CHANGE"
    TRUST_SOURCE = "QG-TRUST-SOURCE"
    TRUST_ROOT = "QG-TRUST-ROOT"
    TRUST_HISTORY = "QG-TRUST-HISTORY"
    OVERRIDE = "QG-OVERRIDE"
    DEP_VULN = "QG-DEP-VULN"
    DEP_RANGE = "QG-DEP-RANGE"
    DEP_UNPINNED = "QG-DEP-UNPINNED"
    DEP_UNHASHED = "QG-DEP-UNHASHED"
    DEP_LICENSE = "QG-DEP-LICENSE"
    DEP_IGNORE_EXPIRED = "QG-DEP-IGNORE-EXPIRED"
    DEP_UNSCANNABLE = "QG-DEP-UNSCANNABLE"
    DEP_OUTDATED = "QG-DEP-OUTDATED"
    DEP_DB = "QG-DEP-DB"
    DEP_NOTHING_CHECKED = "QG-DEP-NOTHING-CHECKED"
    DEP_UNEVALUATED = "QG-DEP-UNEVALUATED"
    SAST = "QG-SAST"
    SAST_ERROR = "QG-SAST-ERROR"


# bandit's test ids extend this family: QG-SAST-B101, QG-SAST-B602, ...
SAST_PREFIX = "QG-SAST-"


class Family(enum.Enum):
    """What a rule is about; decided by its id's prefix, here and nowhere else."""

    INTEGRITY = "QG-INT-"  # the tree against the signed list
    SIGNATURE = "QG-SIG-"  # the signed envelope itself
    TRUST = "QG-TRUST-"  # where trust comes from and how it changes
    OVERRIDE = "QG-OVERRIDE"
    DEPENDENCY = "QG-DEP-"
    SAST = "QG-SAST"

    @property
    def area(self) -> str:
        """The half of the product: "integrity" or "dependencies"."""
        return "dependencies" if self in (Family.DEPENDENCY, Family.SAST) else "integrity"


def family(rule_id: str) -> Family | None:
    """The family of a rule id (None for an id qeguard never produces)."""
    for f in Family:
        if rule_id == f.value or rule_id.startswith(
            f.value if f.value.endswith("-") else f"{f.value}-"
        ):
            return f
    return None


class Identity(enum.Enum):
    """What makes two findings of a rule the same finding (and gives them one fingerprint)."""

    # The place: a file (and line) in the tree, a tier, a declaration. Two places, two findings.
    LOCATION = "location"
    # The package version: one finding per (rule, package, version, advisory id), however
    # many files declare it; the declarations become the finding's locations.
    PACKAGE = "package"


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    id: str
    name: str
    short: str
    full: str
    help: str
    # SARIF `security-severity` (0.0-10.0) of the rule's usual severity; a finding of another
    # severity gets a SARIF rule of its own (see render/sarif.py), so this names the default.
    security_severity: float = 5.0
    # False for rules that are not about security (outdated pins, analysis errors): SARIF
    # neither tags them `security` nor gives them a `security-severity`.
    security: bool = True
    identity: Identity = Identity.LOCATION
    # `details["id"]` (and `details["ids"]`) name advisories: shown with their aliases and links.
    advisory: bool = False
    # The `details` field that tells two findings of this rule at one place apart (part of
    # the fingerprint): an advisory id, or the unsafe entry a manifest list names.
    key: str = "id"


_RULES = [
    # Integrity: the tree against the signed list.
    Rule(
        id=RuleId.INT_MODIFIED,
        name="ProtectedFileModified",
        security_severity=8.0,
        short="A protected file's content differs from its signed hash.",
        full="The file's SHA-256 does not match the entry in the tier's signed manifest.",
        help="If the change is intended, run `qeguard sign --tier TIER --key KEY` and commit "
        "`.qeguard/manifests`; otherwise `qeguard restore PATH`.",
    ),
    Rule(
        id=RuleId.INT_MISSING,
        name="ProtectedFileMissing",
        security_severity=8.0,
        short="A protected file listed in the manifest is gone.",
        full="The signed manifest lists the file but it does not exist in the tree.",
        help="Restore it with `qeguard restore PATH`, or re-sign the tier if the removal is "
        "intended.",
    ),
    Rule(
        id=RuleId.INT_ADDED,
        name="UnsignedProtectedFile",
        security_severity=8.0,
        short="A file matches a tier's patterns but is not in its manifest.",
        full="New files in a protected tier must be signed before they are trusted.",
        help="Run `qeguard sign --tier TIER --key KEY` to add it to the manifest.",
    ),
    Rule(
        id=RuleId.INT_KIND,
        name="FileKindChanged",
        security_severity=8.0,
        short="A protected path changed kind (file, symlink, directory).",
        full="Swapping a file for a symlink or directory can redirect what is read.",
        help="Restore the original kind with `qeguard restore PATH`, or re-sign the tier.",
    ),
    Rule(
        id=RuleId.INT_EXEC,
        name="ExecBitChanged",
        security_severity=8.0,
        short="A protected file's executable bit changed.",
        full="The mode (100644/100755) differs from the signed manifest.",
        help="Reset the mode (`chmod`) or re-sign the tier.",
    ),
    Rule(
        id=RuleId.INT_SYMLINK,
        name="SymlinkRetargeted",
        security_severity=8.0,
        short="A protected symlink points somewhere else.",
        full="The symlink target differs from the signed target.",
        help="Restore the link with `qeguard restore PATH`, or re-sign the tier.",
    ),
    Rule(
        id=RuleId.INT_PATH,
        name="UnsafeManifestPath",
        key="entry",
        security_severity=9.0,
        short="A manifest entry names an unsafe path.",
        full="Entries must be relative POSIX paths inside the repository, never absolute, "
        "never with `..`, never inside `.git/`.",
        help="Re-create the manifest with `qeguard sign`; investigate who wrote this entry.",
    ),
    Rule(
        id=RuleId.INT_UNREADABLE,
        name="ProtectedFileUnreadable",
        security_severity=8.0,
        short="A protected file cannot be read.",
        full="qeguard could not read the file to hash it (permissions or I/O error).",
        help="Fix the file's permissions and run `qeguard verify` again.",
    ),
    # Signatures and trust.
    Rule(
        id=RuleId.SIG_MISSING,
        name="ManifestMissing",
        security_severity=8.0,
        short="A tier has no signed manifest.",
        full="The tier's `.list` or `.dsse.json` file does not exist.",
        help="Run `qeguard sign --tier TIER --key KEY`.",
    ),
    Rule(
        id=RuleId.SIG_MALFORMED,
        name="ManifestMalformed",
        security_severity=9.0,
        short="A manifest list or envelope cannot be parsed.",
        full="The DSSE envelope or the list file is not in the expected format.",
        help="Re-create it with `qeguard sign --tier TIER --key KEY`.",
    ),
    Rule(
        id=RuleId.SIG_BINDING,
        name="ManifestListMismatch",
        security_severity=9.0,
        short="The manifest list does not match what the envelope signed.",
        full="The list's digest, entry count, tier or payload type differs from the signed "
        "payload.",
        help="Re-sign with `qeguard sign --tier TIER --key KEY`; someone edited the list by hand "
        "or a sign was interrupted.",
    ),
    Rule(
        id=RuleId.SIG_THRESHOLD,
        name="NotEnoughSigners",
        security_severity=8.0,
        short="Too few distinct trusted signers for the tier.",
        full="Signatures by distinct keys trusted for this tier are fewer than its threshold.",
        help="Ask another trusted signer to run `qeguard sign --tier TIER --key KEY`.",
    ),
    Rule(
        id=RuleId.SIG_EXPIRED,
        name="ManifestExpired",
        security_severity=7.0,
        short="The signed manifest has expired.",
        full="The payload's `expires` time is in the past.",
        help="Re-sign the tier: `qeguard sign --tier TIER --key KEY`.",
    ),
    Rule(
        id=RuleId.SIG_POLICY,
        name="PolicyChangedSinceSigning",
        security_severity=8.0,
        short="The policy changed since the manifest was signed.",
        full="The payload's `policy_sha256` differs from the effective policy, so the tier's "
        "patterns may have been narrowed.",
        help="Review the policy change, then re-sign: `qeguard sign --key KEY`.",
    ),
    Rule(
        id=RuleId.SIG_ROLLBACK,
        name="ManifestRollback",
        security_severity=9.0,
        short="A manifest's sequence did not advance.",
        full="The payload differs from the base branch's but its `sequence` is not higher: an "
        "older signed manifest may have been restored.",
        help="Re-sign on top of the base branch: `qeguard sign --tier TIER --key KEY`.",
    ),
    Rule(
        id=RuleId.SIG_UNREACHABLE,
        name="ThresholdUnreachable",
        security_severity=4.0,
        short="A tier needs more distinct signers than are trusted for it.",
        full="The tier's threshold is higher than the number of distinct keys trust.toml "
        "trusts for it now, so no set of signatures can ever meet it.",
        help="Trust more signers (`qeguard trust add NAME KEY.pub --tiers TIER`) or lower the "
        "tier's threshold.",
    ),
    Rule(
        id=RuleId.INT_UNMATCHED,
        name="PatternMatchesNothing",
        security_severity=3.0,
        short="A tier pattern written in the policy matches no file.",
        full="A pattern of the repository's policy file (not one a preset brings) matches no "
        "file in the tree; a typo in a pattern leaves the files it meant unprotected.",
        help="Check the pattern (gitignore syntax, e.g. `src/*/core/**`) or remove it.",
    ),
    Rule(
        id=RuleId.TRUST_CHANGE,
        name="UnapprovedTrustChange",
        security_severity=9.5,
        short="policy.toml or trust.toml changed without enough signatures from the old trust.",
        full="A change to the trust root must be signed by the threshold of the strictest tier "
        "under the trust in force before the change.",
        help="Have the current trusted signers of the strictest tier run `qeguard sign`.",
    ),
    Rule(
        id=RuleId.TRUST_SOURCE,
        name="TrustFromWorkingTree",
        security_severity=0.0,
        short="Trust was read from the working tree.",
        full="No commit holds the policy and trust yet, so they could vouch for themselves.",
        help="Commit `.qeguard/`; later runs walk trust from the first commit that holds it, "
        "or from a pinned `--trust-root`.",
    ),
    Rule(
        id=RuleId.TRUST_ROOT,
        name="TrustRootNotInHistory",
        security_severity=9.5,
        short="The trust root is not on the verified commit's first-parent history.",
        full="Trust is walked from the trust root (`--trust-root`, `QEGUARD_TRUST_ROOT`, or the "
        "first commit with `.qeguard/`) along the first-parent history to the verified commit; "
        "a root outside that history means the history was rewritten or is unrelated.",
        help="Verify a commit that descends from the pinned root, or pin the root anew after "
        "review: `--trust-root COMMIT`.",
    ),
    Rule(
        id=RuleId.TRUST_HISTORY,
        name="TrustChangeDropped",
        security_severity=9.5,
        short="The verified commit lacks a trust change that the trust ref has.",
        full="The newest change of policy.toml or trust.toml on `--trust-ref` is not an "
        "ancestor of the verified commit: a rewritten history could drop a key removal this way.",
        help="Rebase the change onto the trust ref (or merge it in) and verify again.",
    ),
    Rule(
        id=RuleId.OVERRIDE,
        name="EmergencyOverride",
        security_severity=7.0,
        short="A blocked change was let through by an emergency override.",
        full="An override records who, when and why; it clears only when the tier's threshold "
        "co-signs the manifest.",
        help="Have the tier's signers review and run `qeguard sign --tier TIER --key KEY`.",
    ),
    # Dependencies.
    Rule(
        id=RuleId.DEP_VULN,
        name="VulnerableDependency",
        security_severity=8.0,
        identity=Identity.PACKAGE,
        advisory=True,
        short="A dependency has a known vulnerability.",
        full="The pinned or installed version is affected by an advisory.",
        help="Upgrade to a fixed version (`qeguard deps --fix-suggestions`).",
    ),
    Rule(
        id=RuleId.DEP_RANGE,
        name="SpecifierAdmitsVulnerable",
        security_severity=3.0,
        advisory=True,
        short="A version specifier admits known-vulnerable versions.",
        full="The declared range allows versions with known vulnerabilities.",
        help="Raise the lower bound to the suggested version.",
    ),
    Rule(
        id=RuleId.DEP_UNPINNED,
        name="UnpinnedDependency",
        security_severity=3.0,
        short="A dependency is not pinned to an exact version.",
        full="The policy requires exact `==` pins.",
        help="Pin it (`name==version`) or use a lock file.",
    ),
    Rule(
        id=RuleId.DEP_UNHASHED,
        name="DependencyWithoutHash",
        security_severity=4.0,
        short="A dependency has no hash.",
        full="The policy requires `--hash` for every requirement.",
        help="Regenerate with `pip-compile --generate-hashes` or `uv pip compile "
        "--generate-hashes`.",
    ),
    Rule(
        id=RuleId.DEP_LICENSE,
        name="DisallowedLicense",
        security_severity=5.0,
        identity=Identity.PACKAGE,
        short="A dependency's license is not allowed by the policy.",
        full="The license is on the deny list or missing from the allow list.",
        help="Replace the dependency or update `[deps.licenses]` in the policy.",
    ),
    Rule(
        id=RuleId.DEP_IGNORE_EXPIRED,
        name="ExpiredIgnore",
        security_severity=3.0,
        advisory=True,
        short="An ignore entry has expired.",
        full="The ignore's `expires` date is past, so the finding counts again.",
        help="Fix the dependency, or renew the ignore with a new reason and date.",
    ),
    Rule(
        id=RuleId.DEP_UNSCANNABLE,
        name="UnscannableDependency",
        security_severity=3.0,
        short="A dependency cannot be checked against the database.",
        full="URLs, paths and editable installs have no version to look up.",
        help="Pin a released version, or review the source by hand.",
    ),
    Rule(
        id=RuleId.DEP_OUTDATED,
        name="OutdatedPin",
        security_severity=0.0,
        security=False,
        identity=Identity.PACKAGE,
        short="An exact pin is behind the latest release.",
        full="A newer release exists on the package index.",
        help="Update the pin after reviewing the release notes.",
    ),
    Rule(
        id=RuleId.DEP_DB,
        name="VulnerabilityDatabase",
        security_severity=3.0,
        security=False,
        short="The vulnerability data is old or a service failed.",
        full="The offline database is older than 30 days, or the online service failed and the "
        "scan fell back to the offline database.",
        help="Run `qeguard db update` when online.",
    ),
    Rule(
        id=RuleId.DEP_UNEVALUATED,
        name="UnevaluatedAdvisory",
        security_severity=5.0,
        identity=Identity.PACKAGE,
        advisory=True,
        short="An advisory for a dependency could not be evaluated.",
        full="The record's version ranges cannot be ordered (a boundary is not a PEP 440 "
        "version) and it lists no affected versions, so whether this version is affected "
        "is unknown.",
        help="Read the advisory and judge the version by hand; ignore it in `[deps]` with a "
        "reason once reviewed.",
    ),
    Rule(
        id=RuleId.DEP_NOTHING_CHECKED,
        name="NothingChecked",
        security_severity=8.0,
        short="The dependency scan checked nothing.",
        full="No dependency file or installed package was read, or the vulnerability database "
        "holds no records, so a clean result would mean nothing.",
        help="Point the scan at the project's requirements or lock files (`qeguard deps FILE`), "
        "or load a database with `qeguard db update`.",
    ),
    Rule(
        id=RuleId.SAST,
        name="StaticAnalysis",
        security_severity=5.0,
        short="Static analysis (bandit) reported an issue.",
        full="bandit flagged a pattern that is often a security problem.",
        help="Review the code; suppress with `# nosec` and a reason when it is safe.",
    ),
    Rule(
        id=RuleId.SAST_ERROR,
        name="StaticAnalysisError",
        security_severity=3.0,
        security=False,
        short="Static analysis could not read a file.",
        full="bandit could not parse or read a file, so it was not analysed.",
        help="Fix the file's syntax or encoding, or exclude it in `[tool.bandit]`.",
    ),
]

RULES: dict[str, Rule] = {r.id: r for r in _RULES}


def rule(rule_id: str) -> Rule:
    """The rule for an id; unknown ids (e.g. bandit's `QG-SAST-B101`) fall back to a prefix."""
    if rule_id in RULES:
        return RULES[rule_id]
    prefix = rule_id.rsplit("-", 1)[0]
    base = RULES.get(prefix)
    if base is None:
        return Rule(id=rule_id, name=rule_id, short=rule_id, full=rule_id, help="")
    return replace(base, id=rule_id)
