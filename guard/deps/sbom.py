"""CycloneDX JSON SBOM of the scanned dependencies, validated against the schema offline."""

from __future__ import annotations

from collections.abc import Sequence

from qeguard.deps.model import Dependency
from qeguard.errors import GuardError


def build_sbom(deps: Sequence[Dependency], *, project: str) -> str:
    """CycloneDX 1.6 JSON for the pinned dependencies (one component per name and version)."""
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from packageurl import PackageURL

    bom = Bom()
    root = Component(name=project, type=ComponentType.APPLICATION, bom_ref=f"project:{project}")
    bom.metadata.component = root
    seen: set[tuple[str, str]] = set()
    algorithms = {
        "sha256": HashAlgorithm.SHA_256,
        "sha384": HashAlgorithm.SHA_384,
        "sha512": HashAlgorithm.SHA_512,
    }
    for dep in sorted(deps, key=lambda d: (d.canonical_name, d.version or "")):
        if dep.version is None or (dep.canonical_name, dep.version) in seen:
            continue
        seen.add((dep.canonical_name, dep.version))
        hashes = []
        for h in dep.hashes[:1]:  # one file's digest; a component is not a single file
            alg, _, digest = h.partition(":")
            if alg in algorithms:
                hashes.append(HashType(alg=algorithms[alg], content=digest))
        purl = PackageURL(type="pypi", name=dep.canonical_name, version=dep.version)
        bom.components.add(
            Component(
                name=dep.name,
                version=dep.version,
                type=ComponentType.LIBRARY,
                purl=purl,
                bom_ref=f"{dep.canonical_name}=={dep.version}",
                hashes=hashes,
            )
        )
    bom.register_dependency(root, list(bom.components))
    text: str = JsonV1Dot6(bom).output_as_string(indent=2)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise GuardError(
            f"the generated SBOM does not validate: {error}",
            hint="please report this as a qeguard bug",
        )
    return text
