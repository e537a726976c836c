"""Distribution scanners of the dpkg and alpine ecosystems: Debian, Ubuntu, Alpine.

Each returns the same Distribution the matching updater writes, because the matcher looks
vulnerabilities up by these fields (clair-api.md 7.2):
- Debian: claircore `debian/distributionscanner.go` + `debian/releases.go` mkDist.
- Ubuntu: claircore `ubuntu/updaterset.go` mkDist ("20.04 (Focal)", "Ubuntu 20.04").
- Alpine: claircore `alpine/testdata/*/want` (version "3.14" — not version_id — and
  "Alpine Linux v3.14"; edge is "edge" / "Alpine Linux edge").
"""

from __future__ import annotations

import re
from typing import ClassVar

from clair_common.distributions import debian_distribution, ubuntu_distribution
from clair_common.models import Distribution

from . import osrelease
from .base import LayerFiles, Scanner, ScanResult, read_file

LSB_RELEASE = "etc/lsb-release"
ISSUE = "etc/issue"

_PAREN_WORD = re.compile(r"\(\w+\)$", re.ASCII)
_INT = re.compile(r"[+-]?[0-9]+")


def debian_from_os_release(kv: dict[str, str]) -> Distribution | None:
    if kv.get("ID") != "debian":
        return None
    if "VERSION_CODENAME" in kv:
        codename = kv["VERSION_CODENAME"]
    else:
        # Distroless and Debian <= 8 carry the codename only in VERSION: "... (bookworm)".
        found = _PAREN_WORD.search(kv.get("VERSION", ""))
        codename = "".join(c for c in (found.group() if found else "") if c.isalpha())
    version_id = kv.get("VERSION_ID", "")
    if not codename or not _INT.fullmatch(version_id):
        return None
    major = int(version_id)
    if not -(2**31) <= major < 2**31:
        return None
    return debian_distribution(codename, major)


class DebianScanner(Scanner):
    name: ClassVar[str] = "debian"
    version: ClassVar[str] = "2"
    kind: ClassVar[str] = "distribution"
    ecosystem: ClassVar[str] = "dpkg"

    def wants(self, path: str) -> bool:
        return path in osrelease.PATHS

    def scan(self, layer: LayerFiles) -> ScanResult:
        # Clair opens only etc/os-release (following symlinks), no usr/lib fallback.
        kv = osrelease.load(layer, fallback=False)
        dist = debian_from_os_release(kv) if kv is not None else None
        return ScanResult(distributions=[dist] if dist else [])


_VERSION_CODENAME = re.compile(r"(?:\(|, )([A-Za-z]+)")


def ubuntu_from_lsb_release(kv: dict[str, str]) -> Distribution | None:
    if kv.get("DISTRIB_ID") != "Ubuntu":
        return None
    release, codename = kv.get("DISTRIB_RELEASE", ""), kv.get("DISTRIB_CODENAME", "")
    return ubuntu_distribution(release, codename) if release and codename else None


def ubuntu_from_os_release(kv: dict[str, str]) -> Distribution | None:
    if kv.get("ID") != "ubuntu":
        return None
    version_id = kv.get("VERSION_ID", "")
    codename = kv.get("VERSION_CODENAME") or kv.get("UBUNTU_CODENAME") or ""
    if not codename:
        # 12.04/14.04 only say `VERSION="14.04.6 LTS, Trusty Tahr"`.
        found = _VERSION_CODENAME.search(kv.get("VERSION", ""))
        codename = found.group(1).lower() if found else ""
    return ubuntu_distribution(version_id, codename) if version_id and codename else None


def _parse_or_none(data: bytes | None) -> dict[str, str] | None:
    if data is None:
        return None
    try:
        return osrelease.parse(data)
    except osrelease.OsReleaseError:
        return None


class UbuntuScanner(Scanner):
    name: ClassVar[str] = "ubuntu"
    version: ClassVar[str] = "3"
    kind: ClassVar[str] = "distribution"
    ecosystem: ClassVar[str] = "dpkg"

    def wants(self, path: str) -> bool:
        return path == LSB_RELEASE or path in osrelease.PATHS

    def scan(self, layer: LayerFiles) -> ScanResult:
        dist = None
        lsb = _parse_or_none(read_file(layer, LSB_RELEASE))
        if lsb is not None:
            dist = ubuntu_from_lsb_release(lsb)
        if dist is None:
            kv = _parse_or_none(osrelease.find(layer, fallback=False))
            dist = ubuntu_from_os_release(kv) if kv is not None else None
        return ScanResult(distributions=[dist] if dist else [])


def alpine_distribution(release: str) -> Distribution:
    """`release` is "X.Y" or "edge"."""
    pretty = "Alpine Linux edge" if release == "edge" else f"Alpine Linux v{release}"
    return Distribution(did="alpine", name="Alpine Linux", version=release, pretty_name=pretty)


_MAJOR_MINOR = re.compile(r"([0-9]+)\.([0-9]+)")
_ISSUE_RELEASE = re.compile(r"Alpine Linux ([0-9]+)\.([0-9]+)")


def alpine_from_os_release(kv: dict[str, str]) -> Distribution | None:
    if kv.get("ID") != "alpine":
        return None
    if kv.get("PRETTY_NAME", "").endswith(" edge"):
        return alpine_distribution("edge")
    found = _MAJOR_MINOR.match(kv.get("VERSION_ID", ""))
    return alpine_distribution(f"{found[1]}.{found[2]}") if found else None


def alpine_from_issue(data: bytes) -> Distribution | None:
    text = data.decode("utf-8", "replace")
    first = text.split("\n", 1)[0]
    if "Alpine Linux" not in first:
        return None
    if "(edge)" in first:
        return alpine_distribution("edge")
    found = _ISSUE_RELEASE.search(first)
    return alpine_distribution(f"{found[1]}.{found[2]}") if found else None


class AlpineScanner(Scanner):
    name: ClassVar[str] = "alpine"
    version: ClassVar[str] = "3"
    kind: ClassVar[str] = "distribution"
    ecosystem: ClassVar[str] = "alpine"

    def wants(self, path: str) -> bool:
        return path == ISSUE or path in osrelease.PATHS

    def scan(self, layer: LayerFiles) -> ScanResult:
        dist = None
        kv = _parse_or_none(osrelease.find(layer, fallback=False))
        if kv is not None:
            dist = alpine_from_os_release(kv)
        if dist is None:
            issue = read_file(layer, ISSUE)
            dist = alpine_from_issue(issue) if issue is not None else None
        return ScanResult(distributions=[dist] if dist else [])
