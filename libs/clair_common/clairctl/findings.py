"""A vulnerability report flattened to findings (package, vulnerability), most severe first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from clair_common.clairctl.purl import report_purls
from clair_common.models import SEVERITIES, SEVERITY_RANK


@dataclass(frozen=True)
class Finding:
    package_id: str
    package: str
    installed: str
    purl: str
    vulnerability_id: str
    advisory: str
    severity: str  # Clair's normalized_severity
    fixed_in: str
    link: str
    description: str
    raw_severity: str
    kev: bool = False  # in CISA's Known Exploited Vulnerabilities (clair.kev enrichment)
    epss: float | None = None  # highest EPSS probability of its CVEs (clair.epss enrichment)

    @property
    def fixable(self) -> bool:
        return bool(self.fixed_in)

    @property
    def rank(self) -> int:
        return SEVERITY_RANK.get(self.severity, 0)


@dataclass
class ImageResult:
    """What `clairctl report` knows of one image."""

    name: str
    digest: str
    index_report: dict[str, Any]
    report: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    suppressed: int = 0  # findings hidden by --vex
    filtered: int = 0  # findings hidden by --severity / --ignore-unfixed

    @property
    def purls(self) -> dict[str, str]:
        return report_purls(self.index_report or self.report)


def severity_name(text: str) -> str:
    """`high`, `HIGH` → `High`; unknown names raise ValueError naming the choices."""
    for name in SEVERITIES:
        if name.lower() == text.strip().lower():
            return name
    raise ValueError(f"unknown severity {text!r} (one of {', '.join(SEVERITIES)})")


def fixed_version(text: str) -> str:
    """Clair's `fixed_in_version`: a version, or for range-based feeds (OSV) a query string
    such as `fixed=3.7&introduced=0.1`; only the fixed version is shown."""
    if "=" not in text:
        return text
    fields = parse_qs(text)
    return (fields.get("fixed") or [""])[0]


def first_link(links: str) -> str:
    return links.split()[0] if links and links.split() else ""


def _enrichment(report: Mapping[str, Any], enricher: str) -> dict[str, list[Any]]:
    """Vulnerability id → records of one enricher; media types name it as `enricher=NAME`."""
    out: dict[str, list[Any]] = {}
    for media_type, entries in (report.get("enrichments") or {}).items():
        if f"enricher={enricher}" not in media_type.replace(";", " ").split():
            continue
        for entry in entries or []:
            for vuln_id, records in (entry or {}).items():
                out.setdefault(str(vuln_id), []).extend(records or [])
    return out


def _max_epss(records: list[Any]) -> float | None:
    scores = [
        float(r["epss"])
        for r in records
        if isinstance(r, dict) and isinstance(r.get("epss"), int | float)
    ]
    return max(scores) if scores else None


def findings_of(report: Mapping[str, Any], purls: Mapping[str, str]) -> list[Finding]:
    kev = _enrichment(report, "clair.kev")
    epss = _enrichment(report, "clair.epss")
    packages = report.get("packages") or {}
    vulns = report.get("vulnerabilities") or {}
    out: list[Finding] = []
    for pkg_id, vuln_ids in (report.get("package_vulnerabilities") or {}).items():
        pkg = packages.get(pkg_id) or {}
        for vuln_id in vuln_ids or []:
            vuln = vulns.get(vuln_id) or {}
            out.append(
                Finding(
                    package_id=str(pkg_id),
                    package=str(pkg.get("name", "")),
                    installed=str(pkg.get("version", "")),
                    purl=purls.get(pkg_id, ""),
                    vulnerability_id=str(vuln_id),
                    advisory=str(vuln.get("name", "")),
                    severity=str(vuln.get("normalized_severity") or "Unknown"),
                    fixed_in=fixed_version(str(vuln.get("fixed_in_version") or "")),
                    link=first_link(str(vuln.get("links") or "")),
                    description=str(vuln.get("description") or ""),
                    raw_severity=str(vuln.get("severity") or ""),
                    kev=bool(kev.get(str(vuln_id))),
                    epss=_max_epss(epss.get(str(vuln_id), [])),
                )
            )
    return sort_findings(out)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first; then package and advisory so output is stable."""
    return sorted(findings, key=lambda f: (-f.rank, f.package, f.installed, f.advisory))
