"""Package URLs (purl) for the packages of an index report, as SBOM and VEX tools expect.

The ecosystem comes from the package's detector (the scanner that found it), else from where
it was found; the namespace and `distro` qualifier from its distribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from packageurl import PackageURL

# Scanner name (from the detector URN) → purl type.
_DETECTOR_TYPES = {
    "dpkg": "deb",
    "dpkg-distroless": "deb",
    "apk": "apk",
    "rpm": "rpm",
    "python": "pypi",
}
# os-release ID → purl namespace where the purl spec names it differently.
_NAMESPACES = {"rhel": "redhat", "ol": "oracle", "amzn": "amazon", "sles": "suse", "sle": "suse"}


def ecosystem(package: Mapping[str, Any], env: Mapping[str, Any] | None) -> str:
    detector = str(package.get("detector") or "")
    parts = detector.split(":")
    if len(parts) >= 4 and parts[3] in _DETECTOR_TYPES:
        return _DETECTOR_TYPES[parts[3]]
    db = str((env or {}).get("package_db") or "")
    if "dpkg" in db:
        return "deb"
    if "apk" in db:
        return "apk"
    if "rpm" in db or db.endswith(("Packages", "Packages.db", "rpmdb.sqlite")):
        return "rpm"
    if db.startswith("python:") or "site-packages" in db or "dist-packages" in db:
        return "pypi"
    return "generic"


def package_purl(
    package: Mapping[str, Any],
    env: Mapping[str, Any] | None,
    distribution: Mapping[str, Any] | None,
) -> str:
    kind = ecosystem(package, env)
    name, version = str(package.get("name", "")), str(package.get("version", "")) or None
    qualifiers: dict[str, str] = {}
    namespace = None
    arch = str(package.get("arch") or "")
    if kind in ("deb", "apk", "rpm"):
        did = str((distribution or {}).get("did") or "")
        namespace = _NAMESPACES.get(did, did) or None
        if arch:
            qualifiers["arch"] = arch
        dist_version = str((distribution or {}).get("version_id") or "")
        if did and dist_version:
            qualifiers["distro"] = f"{did}-{dist_version}"
        if kind == "rpm" and version and ":" in version.split("-", 1)[0]:
            epoch, _, rest = version.partition(":")
            qualifiers["epoch"], version = epoch, rest
        source = package.get("source") or {}
        if kind == "deb" and source.get("name") and source.get("name") != name:
            qualifiers["upstream"] = str(source["name"])
    elif kind == "pypi":
        name = name.lower().replace("_", "-")
    return str(
        PackageURL(
            type=kind,
            namespace=namespace,
            name=name,
            version=version,
            qualifiers=qualifiers or None,
        ).to_string()
    )


def report_purls(index_report: Mapping[str, Any]) -> dict[str, str]:
    """Package id → purl, for every package of an index (or vulnerability) report."""
    packages = index_report.get("packages") or {}
    envs = index_report.get("environments") or {}
    dists = index_report.get("distributions") or {}
    out: dict[str, str] = {}
    for pkg_id, pkg in packages.items():
        env_list = envs.get(pkg_id) or []
        env = env_list[0] if env_list else None
        dist = dists.get(str((env or {}).get("distribution_id") or "")) if env else None
        out[pkg_id] = package_purl(pkg, env, dist)
    return out
