"""CycloneDX 1.6 JSON: the image, its packages with purls, and (for reports) the findings.

Built and serialized with cyclonedx-python-lib. Each image is a `container` component with its
packages nested; a vulnerability per Clair vulnerability names the packages it affects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TextIO

from cyclonedx.model import Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.tool import ToolRepository
from cyclonedx.model.vulnerability import (
    BomTarget,
    Vulnerability,
    VulnerabilityRating,
    VulnerabilitySeverity,
    VulnerabilitySource,
)
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from clair_common.clairctl.findings import Finding, ImageResult
from clair_common.clairctl.formats.image_ids import image_purl

_SEVERITIES = {
    "Critical": VulnerabilitySeverity.CRITICAL,
    "High": VulnerabilitySeverity.HIGH,
    "Medium": VulnerabilitySeverity.MEDIUM,
    "Low": VulnerabilitySeverity.LOW,
    "Negligible": VulnerabilitySeverity.INFO,
    "Unknown": VulnerabilitySeverity.UNKNOWN,
}


def _bom(results: Sequence[ImageResult], with_vulnerabilities: bool) -> Bom:
    bom = Bom()
    bom.metadata.tools = ToolRepository(
        components=[Component(name="clairctl", type=ComponentType.APPLICATION)]
    )
    for result in results:
        purls = result.purls
        image = Component(
            name=result.name,
            type=ComponentType.CONTAINER,
            version=result.digest,
            bom_ref=result.digest,
            purl=PackageURL.from_string(image_purl(result)),
        )
        refs: dict[str, str] = {}
        packages = result.report.get("packages") or {}
        for pkg_id in sorted(packages, key=lambda p: (packages[p].get("name", ""), p)):
            pkg = packages[pkg_id]
            refs[pkg_id] = f"{result.digest}/{pkg_id}"
            purl = purls.get(pkg_id)
            image.components.add(
                Component(
                    name=str(pkg.get("name", "")),
                    version=str(pkg.get("version", "")) or None,
                    bom_ref=refs[pkg_id],
                    purl=PackageURL.from_string(purl) if purl else None,
                    cpe=str(pkg.get("cpe") or "") or None,
                    properties=[Property(name="clair:package_id", value=str(pkg_id))],
                )
            )
        if len(results) == 1:
            bom.metadata.component = image
        else:
            bom.components.add(image)
        if with_vulnerabilities:
            _add_vulnerabilities(bom, result, refs)
    return bom


def _add_vulnerabilities(bom: Bom, result: ImageResult, refs: dict[str, str]) -> None:
    by_vuln: dict[str, list[Finding]] = defaultdict(list)
    for finding in result.findings:
        by_vuln[finding.vulnerability_id].append(finding)
    for vuln_id, found in by_vuln.items():
        first = found[0]
        fixed = sorted({f.fixed_in for f in found if f.fixed_in})
        bom.vulnerabilities.add(
            Vulnerability(
                bom_ref=f"{result.digest}/vulnerability/{vuln_id}",
                id=first.advisory,
                source=VulnerabilitySource(url=XsUri(first.link)) if first.link else None,
                description=first.description or None,
                ratings=[
                    VulnerabilityRating(
                        severity=_SEVERITIES.get(first.severity, VulnerabilitySeverity.UNKNOWN)
                    )
                ],
                recommendation=f"Upgrade to {', '.join(fixed)}" if fixed else None,
                affects=[BomTarget(ref=refs[f.package_id]) for f in found if f.package_id in refs],
            )
        )


def _write(results: Sequence[ImageResult], out: TextIO, with_vulnerabilities: bool) -> None:
    out.write(JsonV1Dot6(_bom(results, with_vulnerabilities)).output_as_string(indent=2) + "\n")


def write_cyclonedx_vulnerabilities(
    results: Sequence[ImageResult], out: TextIO, color: bool = False
) -> None:
    _write(results, out, True)


def write_cyclonedx_sbom(results: Sequence[ImageResult], out: TextIO, color: bool = False) -> None:
    _write(results, out, False)
