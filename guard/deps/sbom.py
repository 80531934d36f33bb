"""A CycloneDX 1.6 JSON SBOM of a scan: the project, every dependency, the vulnerabilities.

Every declaration becomes a component: an exact pin with its version and every hash the
input lists, a range with its specifier (`qeguard:specifier`, no version), a URL, path or
VCS source with what it is (`qeguard:source`). The vulnerabilities section comes from the
same scan's findings, so the SBOM and the report agree. Built with cyclonedx-python-lib;
validating the result needs `jsonschema` and is done by the tests, not at run time (a
plain install has no jsonschema, and the library's serializer writes valid documents).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import qeguard
from qeguard.deps.model import Dependency
from qeguard.report import OSV_URL, Finding, Severity
from qeguard.rules import RuleId

_HASHES = {"sha256": "SHA_256", "sha384": "SHA_384", "sha512": "SHA_512", "md5": "MD5"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Project:
    name: str
    version: str | None = None


def project_of(root: Path) -> Project:
    """The project's name and version from pyproject.toml (`[project]`, else poetry's
    `[tool.poetry]`), else the folder's name."""
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return Project(name=root.name)
    tool = data.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    for table in (data.get("project"), poetry):
        if isinstance(table, dict) and isinstance(table.get("name"), str):
            version = table.get("version")
            return Project(
                name=table["name"], version=version if isinstance(version, str) else None
            )
    return Project(name=root.name)


def build_sbom(
    deps: Sequence[Dependency],
    *,
    project: Project,
    findings: Iterable[Finding] = (),
) -> str:
    """CycloneDX 1.6 JSON: `project` as metadata.component, qeguard in metadata.tools,
    one component per distinct dependency and one vulnerability per advisory."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    bom = Bom()
    root = Component(
        name=project.name,
        version=project.version,
        type=ComponentType.APPLICATION,
        bom_ref=f"project:{project.name}",
    )
    bom.metadata.component = root
    bom.metadata.tools.components.add(
        Component(
            name="qeguard",
            version=qeguard.__version__,
            type=ComponentType.APPLICATION,
            bom_ref=f"tool:qeguard@{qeguard.__version__}",
        )
    )
    components: dict[str, Any] = {}
    for dep in sorted(deps, key=lambda d: (d.canonical_name, d.version or "", d.specifier)):
        ref = _ref(dep)
        if ref in components:
            continue
        hashes = []
        for h in dict.fromkeys(dep.hashes):  # every file's digest, each once
            alg, _, digest = h.partition(":")
            if alg.lower() in _HASHES and digest:
                hashes.append(
                    HashType(alg=getattr(HashAlgorithm, _HASHES[alg.lower()]), content=digest)
                )
        properties = [Property(name="qeguard:declared-in", value=dep.location)]
        if dep.version is None and dep.specifier:
            properties.append(Property(name="qeguard:specifier", value=dep.specifier))
        if dep.unscannable:
            properties.append(Property(name="qeguard:source", value=dep.unscannable))
        if dep.group:
            properties.append(Property(name="qeguard:group", value=dep.group))
        purl = (
            PackageURL(type="pypi", name=dep.canonical_name, version=dep.version)
            if not dep.unscannable or dep.version
            else None
        )
        component = Component(
            name=dep.name,
            version=dep.version,
            type=ComponentType.LIBRARY,
            purl=purl,
            bom_ref=ref,
            hashes=hashes,
            properties=properties,
            licenses=_licenses(dep.license),
        )
        components[ref] = component
        bom.components.add(component)
    bom.register_dependency(root, list(components.values()))
    for vulnerability in _vulnerabilities(findings, deps):
        bom.vulnerabilities.add(vulnerability)
    text: str = JsonV1Dot6(bom).output_as_string(indent=2)
    return text


def _ref(dep: Dependency) -> str:
    if dep.version is not None:
        return f"{dep.canonical_name}=={dep.version}"
    if dep.unscannable:
        return f"{dep.canonical_name} ({dep.unscannable})"
    return f"{dep.canonical_name}{dep.specifier or ' (any version)'}"


def _licenses(text: str | None) -> list[Any]:
    if not text:
        return []
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from qeguard.deps.licenses import spdx

    expression = spdx(text)
    if expression is None:
        return [DisjunctiveLicense(name=text)]
    return [LicenseExpression(expression)]


def _vulnerabilities(findings: Iterable[Finding], deps: Sequence[Dependency]) -> list[Any]:
    from cyclonedx.model import XsUri
    from cyclonedx.model.vulnerability import (
        BomTarget,
        Vulnerability,
        VulnerabilityAdvisory,
        VulnerabilityRating,
        VulnerabilityReference,
        VulnerabilityScoreSource,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )

    refs: dict[tuple[str, str | None], str] = {
        (d.name, d.version): _ref(d) for d in deps if d.version is not None
    }
    by_id: dict[str, tuple[Finding, set[str]]] = {}
    for f in findings:
        if f.rule != RuleId.DEP_VULN or f.suppressed is not None:
            continue
        ident = str(f.details.get("id"))
        ref = refs.get((f.package or "", f.version))
        entry = by_id.setdefault(ident, (f, set()))
        if ref:
            entry[1].add(ref)
    osv = VulnerabilitySource(name="OSV", url=XsUri("https://osv.dev"))
    methods = {
        "cvss_v3": VulnerabilityScoreSource.CVSS_V3_1,
        "cvss_v4": VulnerabilityScoreSource.CVSS_V4,
    }
    out = []
    for ident, (f, targets) in sorted(by_id.items()):
        d = f.details
        source = str(d.get("severity_source") or "none")
        vector = d.get("cvss") if isinstance(d.get("cvss"), str) else None
        if source == "cvss_v3" and vector and vector.startswith("CVSS:3.0"):
            method = VulnerabilityScoreSource.CVSS_V3
        else:
            method = methods.get(source, VulnerabilityScoreSource.OTHER)
        score = d.get("score")
        severity = (
            VulnerabilitySeverity.UNKNOWN
            if f.severity is Severity.UNKNOWN
            else VulnerabilitySeverity(f.severity.value)
        )
        rating = VulnerabilityRating(
            source=osv,
            score=Decimal(str(score)) if isinstance(score, int | float) else None,
            severity=severity,
            method=method if source != "none" else None,
            vector=vector,
        )
        url = str(d.get("url") or OSV_URL + ident)
        fixes = [str(v) for v in d.get("fix_versions") or ()]
        out.append(
            Vulnerability(
                bom_ref=f"vuln:{ident}",
                id=ident,
                source=osv,
                references=[
                    VulnerabilityReference(id=str(alias), source=osv)
                    for alias in d.get("aliases") or ()
                ],
                ratings=[rating],
                description=f.message,
                detail=str(d.get("description") or "") or None,
                recommendation=(
                    f"upgrade to {', '.join(fixes)} or later" if fixes else f.fix or None
                ),
                advisories=[VulnerabilityAdvisory(url=XsUri(url))],
                affects=[BomTarget(ref=ref) for ref in sorted(targets)],
            )
        )
    return out
