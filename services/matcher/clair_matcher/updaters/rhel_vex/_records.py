"""Red Hat VEX documents → Vulnerability records (claircore `rhel/vex/parser.go` rules).

Per vulnerability of a document, for each product id of a status:
- the id resolves through `default_component_of` relationships into a package product, an
  optional module product and a repository product; the repository needs a `cpe` helper,
  which becomes the record's repository `{name: CPE 2.3 string, key: rhel-cpe-repository}`;
- `fixed`: the package needs an rpm purl in the `redhat` namespace (source rpms skipped); the
  record is the binary package named by the purl, fixed in `<epoch or 0>:<version>`; entries
  that differ only in architecture are one record whose arch lists them all (pattern match);
- `known_affected`: the source package (the purl's name when there is one), no fix;
- the module comes from the relationship's module product (`pkg:rpmmod/redhat/name@stream:..`
  → `name:stream`) or the purl's `rpmmod` qualifier;
- severity is the product's CVSS vector (v4, else v3, else v2), normalized from the product's
  `impact` threat; an entry with a zero base score and no threat is skipped;
- kernel packages are skipped except the runtime ones images can ship, and all of them with
  `ignore_kernel_packages`;
- container (`oci`) products become records of the Red Hat Container Catalog repository for the
  rhcc matcher, named and fixed as `_rhcc.py` says; otherwise as rpms (arch pattern,
  statuses, severity).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from clair_common.models import ZERO_TIME, Package, Repository, Vulnerability, format_time
from clair_common.vulnerable import cpe
from clair_matcher.updaters import _severity as severity
from clair_matcher.updaters.rhel_vex import _rhcc
from clair_matcher.updaters.rhel_vex._csaf import (
    CsafError,
    Document,
    PackageURL,
    escape_cpe_uri,
    parse_purl,
)
from clair_matcher.updaters.rhel_vex._csaf import Vulnerability as CsafVulnerability

log = logging.getLogger("clair.matcher.updaters.rhel_vex")

REPOSITORY_KEY = "rhel-cpe-repository"
PATTERN_MATCH = "pattern match"
# Kernel packages that do end up in images (RHCOS, bootable containers); headers, docs and
# tools would only flood images with kernel findings.
RUNTIME_KERNEL_PACKAGES = frozenset(
    {
        "kernel",
        "kernel-core",
        "kernel-modules",
        "kernel-modules-core",
        "kernel-modules-extra",
        "kernel-rt",
        "kernel-rt-core",
        "kernel-rt-modules",
        "kernel-rt-modules-core",
        "kernel-rt-modules-extra",
        "kernel-64k",
        "kernel-64k-core",
        "kernel-64k-modules",
        "kernel-64k-modules-core",
        "kernel-64k-modules-extra",
    }
)
_IMPACT = {
    "none": "Unknown",
    "low": "Low",
    "moderate": "Medium",
    "important": "High",
    "critical": "Critical",
}
_CVSS_BLOCKS = (("cvss_v4", "CVSS_V4"), ("cvss_v3", "CVSS_V3"), ("cvss_v2", "CVSS_V2"))


def normalize_impact(details: str) -> str:
    return _IMPACT.get(details.strip().lower(), "Unknown")


@lru_cache(maxsize=4096)
def _checked_vector(kind: str, vector: str) -> str:
    severity.cvss_base_score(kind, vector)  # raises ValueError for a bad vector
    return vector


def cvss_vector(score: Mapping[str, Any]) -> tuple[str, float]:
    """(vector, base score) of a `scores` entry; CsafError when it has no valid CVSS block."""
    for key, kind in _CVSS_BLOCKS:
        block = score.get(key)
        if not isinstance(block, dict):
            continue
        vector = block.get("vectorString")
        if not isinstance(vector, str):
            raise CsafError(f"{key}.vectorString: expected a string")
        try:
            _checked_vector(kind, vector)
        except ValueError as exc:
            raise CsafError(f"could not parse {key} vector: {exc}") from None
        base = block.get("baseScore", 0)
        return vector, float(base) if isinstance(base, int | float) else 0.0
    raise CsafError("could not find a valid CVSS object")


@lru_cache(maxsize=4096)
def cpe_repository(helper: str) -> Repository:
    """The record repository for a product's CPE helper; CsafError when it is not a CPE."""
    try:
        bound = cpe.parse(escape_cpe_uri(helper)).bind_fs()
    except cpe.CPEError as exc:
        raise CsafError(f"could not unbind cpe {helper!r}: {exc}") from None
    return Repository(name=bound, key=REPOSITORY_KEY, cpe=bound)


def module_of(product: Mapping[str, str] | None) -> str:
    """`name:stream` of a module product (`pkg:rpmmod/redhat/name@stream:version:context`)."""
    text = (product or {}).get("purl")
    if not text:
        return ""
    try:
        purl = parse_purl(text)
    except ValueError as exc:
        log.debug("rhel-vex: module purl %r: %s", text, exc)
        return ""
    if purl.type != "rpmmod":
        log.debug("rhel-vex: not an rpm module purl: %r", text)
        return ""
    if purl.namespace == "redhat":
        return f"{purl.name}:{purl.version.partition(':')[0]}"
    if purl.namespace.startswith("redhat/"):
        return purl.namespace.partition("/")[2]  # pkg:rpmmod/redhat/postgresql:15/postgresql
    log.debug("rhel-vex: not a Red Hat module purl: %r", text)
    return ""


def _arch(purl: PackageURL) -> str:
    arch = purl.qualifiers.get("arch", "")
    return "amd64|x86_64" if arch in ("amd64", "x86_64") else arch


def _issued(text: str) -> str:
    if not text:
        return ZERO_TIME
    try:
        return format_time(datetime.fromisoformat(text))
    except ValueError:
        raise CsafError(f"bad release_date {text!r}") from None


@dataclass(slots=True)
class _Fixed:
    record: Vulnerability
    arches: list[str] = field(default_factory=list)


class RecordMaker:
    def __init__(self, updater: str, *, ignore_kernel_packages: bool = False) -> None:
        self.updater = updater
        self.ignore_kernel_packages = ignore_kernel_packages

    def records(self, doc: Document) -> Iterator[Vulnerability]:
        for vuln in doc.vulnerabilities:
            links = [link for link in vuln.links if link]
            if doc.self_link:
                links.append(doc.self_link)
            proto = Vulnerability(
                updater=self.updater,
                name=doc.tracking_id,
                description=vuln.description,
                issued=_issued(vuln.release_date),
                links=" ".join(links),
                severity="Unknown",
                normalized_severity="Unknown",
            )
            yield from self._fixed(doc, vuln, proto)
            yield from self._known_affected(doc, vuln, proto)

    def _skip_kernel(self, name: str) -> bool:
        if not name.startswith("kernel"):
            return False
        return self.ignore_kernel_packages or name not in RUNTIME_KERNEL_PACKAGES

    def _wanted(self, purl: PackageURL) -> bool:
        # Red Hat rpms, and container images for the rhcc matcher.
        if purl.type == _rhcc.OCI:
            return _rhcc.is_container(purl)
        return (
            purl.type == "rpm" and purl.namespace == "redhat" and not self._skip_kernel(purl.name)
        )

    def _severity(self, vuln: CsafVulnerability, product_id: str) -> tuple[str, str] | None:
        """(severity, normalized severity), or None for a zero score without threat data."""
        text, normalized, base = "Unknown", "Unknown", None
        score = vuln.scores.get(product_id)
        if score is not None:
            text, base = cvss_vector(score)
        impact = vuln.impacts.get(product_id)
        if impact is not None:
            normalized = normalize_impact(impact)
        elif base == 0:
            return None
        return text, normalized

    def _resolve(
        self, doc: Document, product_id: str
    ) -> tuple[str, Mapping[str, str], str, Repository] | None:
        """(package product id, its helpers, module, repository) of a status entry."""
        parts = doc.components(product_id)
        if parts is None:
            return None
        package_id, module_id, repo_id = parts
        helper = doc.products.get(repo_id, {}).get("cpe")
        package = doc.products.get(package_id)
        if not helper or package is None:
            return None
        module = module_of(doc.products.get(module_id)) if module_id else ""
        return package_id, package, module, cpe_repository(helper)

    def _fixed(
        self, doc: Document, vuln: CsafVulnerability, proto: Vulnerability
    ) -> Iterator[Vulnerability]:
        found: dict[tuple[str, str, str], _Fixed] = {}
        for product_id in vuln.product_status.get("fixed", []):
            resolved = self._resolve(doc, product_id)
            if resolved is None:
                continue
            _, helpers, module, repository = resolved
            try:
                purl = parse_purl(helpers.get("purl", ""))
            except ValueError:
                continue  # no purl, or not one
            arch = _arch(purl)
            if not self._wanted(purl) or arch == "src":
                continue
            module = purl.qualifiers.get("rpmmod", module)
            name, fixed_in = purl.name, f"{purl.qualifiers.get('epoch', '0')}:{purl.version}"
            key = (repository.name, module, purl.without("arch"))
            if purl.type == _rhcc.OCI:
                image, tag = _rhcc.image_name(purl), _rhcc.fixed_tag(purl)
                if image is None or tag is None:
                    continue
                # Per-arch images differ in digest (the purl version): key on name and tag.
                name, fixed_in = image, tag
                key = (repository.name, module, f"oci/{image}@{tag}")
                repository = _rhcc.repository()
            known = found.get(key)
            if known is not None:
                if arch and arch not in known.arches:
                    known.arches.append(arch)
                continue
            severities = self._severity(vuln, product_id)
            if severities is None:
                continue
            links = proto.links
            if fix := vuln.fixes.get(product_id):
                links = f"{links} {fix}" if links else fix
            record = Vulnerability(
                updater=proto.updater,
                name=proto.name,
                description=proto.description,
                issued=proto.issued,
                links=links,
                severity=severities[0],
                normalized_severity=severities[1],
                package=Package(name=name, kind="binary", module=module),
                repository=repository,
                fixed_in_version=fixed_in,
            )
            found[key] = _Fixed(record, [arch] if arch else [])
        for entry in found.values():
            if entry.arches and entry.record.package is not None:
                entry.record.package.arch = "|".join(entry.arches)
                entry.record.arch_op = PATTERN_MATCH
            yield entry.record

    def _known_affected(
        self, doc: Document, vuln: CsafVulnerability, proto: Vulnerability
    ) -> Iterator[Vulnerability]:
        for product_id in vuln.product_status.get("known_affected", []):
            resolved = self._resolve(doc, product_id)
            if resolved is None:
                continue
            name, helpers, module, repository = resolved
            if self._skip_kernel(name):
                continue
            if text := helpers.get("purl"):
                try:
                    purl = parse_purl(text)
                except ValueError:
                    continue
                if not self._wanted(purl):
                    continue
                name = purl.name
                if purl.type == _rhcc.OCI:
                    # claircore keeps the product id when the purl names no image.
                    name = _rhcc.image_name(purl) or resolved[0]
                    repository = _rhcc.repository()
                module = purl.qualifiers.get("rpmmod", module)
            severities = self._severity(vuln, product_id)
            if severities is None:
                continue
            yield Vulnerability(
                updater=proto.updater,
                name=proto.name,
                description=proto.description,
                issued=proto.issued,
                links=proto.links,
                severity=severities[0],
                normalized_severity=severities[1],
                package=Package(name=name, kind="source", module=module),
                repository=repository,
            )
