"""Distribution scanners of the rpm-based systems: RHEL, Amazon Linux, Oracle, SUSE, Photon.

Field values follow the claircore sources named on each builder; they must equal what the
matching updater writes (clair-api.md 7.2) for the matcher's lookups to hit.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import ClassVar

from clair_common.models import Distribution

from . import osrelease
from .base import LayerFiles, Scanner, ScanResult, exists, read_file
from .cpe import to_formatted_string

REDHAT_RELEASE = "etc/redhat-release"
ORACLE_RELEASE = "etc/oracle-release"
ISSUE = "etc/issue"
SUSE_RELEASE = "etc/SuSE-release"
PHOTON_RELEASE = "etc/photon-release"


def _one(dist: Distribution | None) -> ScanResult:
    return ScanResult(distributions=[dist] if dist else [])


def _os_release(layer: LayerFiles) -> dict[str, str] | None:
    return osrelease.load(layer, fallback=False)


# --- RHEL: claircore rhel/distributionscanner.go + rhel/releases.go mkRelease ------------------

_RHEL_RELEASE = re.compile(
    rb"Red Hat Enterprise Linux (?:Server|Atomic Host)?\s*(?:release)?\s*(\d+)(?:\.\d)?"
)


def rhel_distribution(major: int) -> Distribution:
    ver = str(major)
    return Distribution(
        did="rhel",
        name="Red Hat Enterprise Linux Server",
        version=ver,
        version_id=ver,
        pretty_name=f"Red Hat Enterprise Linux Server {ver}",
        cpe=to_formatted_string(f"cpe:/o:redhat:enterprise_linux:{ver}"),
    )


def rhel_from_release_text(data: bytes) -> Distribution | None:
    found = _RHEL_RELEASE.search(data)
    return rhel_distribution(int(found[1])) if found else None


class RhelScanner(Scanner):
    name: ClassVar[str] = "rhel"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "distribution"
    ecosystem: ClassVar[str] = "rhel"

    def wants(self, path: str) -> bool:
        return path in (REDHAT_RELEASE, ORACLE_RELEASE) or path in osrelease.PATHS

    def scan(self, layer: LayerFiles) -> ScanResult:
        # Oracle Linux ships an unmodified redhat-release; its oracle-release decides.
        if exists(layer, ORACLE_RELEASE):
            return ScanResult()
        for path in (REDHAT_RELEASE, osrelease.PATH):
            data = read_file(layer, path)
            dist = rhel_from_release_text(data) if data is not None else None
            if dist is not None:
                return _one(dist)
        return ScanResult()


# --- Amazon Linux: claircore aws/distributionscanner.go + aws/releases.go ----------------------

_AWS_RELEASES: tuple[tuple[re.Pattern[bytes], Distribution], ...] = (
    (
        re.compile(rb'CPE_NAME="cpe:/o:amazon:linux:201.\.0[39]:ga"'),
        Distribution(
            did="amzn",
            name="Amazon Linux AMI",
            version="2018.03",
            version_id="2018.03",
            pretty_name="Amazon Linux AMI 2018.03",
            cpe=to_formatted_string("cpe:/o:amazon:linux:2018.03:ga"),
        ),
    ),
    (
        re.compile(rb'CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2"'),
        Distribution(
            did="amzn",
            name="Amazon Linux",
            version="2",
            version_id="2",
            pretty_name="Amazon Linux 2",
            cpe=to_formatted_string("cpe:2.3:o:amazon:amazon_linux:2"),
        ),
    ),
    (
        re.compile(rb'CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"'),
        Distribution(
            did="amzn",
            name="Amazon Linux",
            version="2023",
            version_id="2023",
            pretty_name="Amazon Linux 2023",
            cpe=to_formatted_string("cpe:2.3:o:amazon:amazon_linux:2023"),
        ),
    ),
)


def aws_from_os_release_text(data: bytes) -> Distribution | None:
    for pattern, dist in _AWS_RELEASES:
        if pattern.search(data):
            return replace(dist)  # a fresh object per scan: callers may set its id
    return None


class AwsScanner(Scanner):
    name: ClassVar[str] = "aws"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "distribution"
    ecosystem: ClassVar[str] = "rpm"

    def wants(self, path: str) -> bool:
        return path in osrelease.PATHS

    def scan(self, layer: LayerFiles) -> ScanResult:
        data = osrelease.find(layer, fallback=False)
        return _one(aws_from_os_release_text(data) if data is not None else None)


# --- Oracle Linux: claircore oracle/distributionscanner.go + oracle/releases.go ----------------

# Clair's per-release regexes, generalized over the major number: os-release's PRETTY_NAME
# ("Oracle Linux Server 8.9") or the issue/oracle-release line ("... release 5.11").
_ORACLE_RELEASE = re.compile(rb"(?is)Oracle Linux Server (?:release ?)?(\d+)(?:\.\d*)?")


def oracle_distribution(major: int) -> Distribution:
    ver = str(major)
    return Distribution(
        did="ol",
        name="Oracle Linux Server",
        version=ver,
        version_code_name=f"Oracle Linux {ver}",
        version_id=ver,
        pretty_name=f"Oracle Linux Server {ver}",
    )


def oracle_from_text(data: bytes) -> Distribution | None:
    found = _ORACLE_RELEASE.search(data)
    return oracle_distribution(int(found[1])) if found else None


class OracleScanner(Scanner):
    name: ClassVar[str] = "oracle"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "distribution"
    ecosystem: ClassVar[str] = "rpm"

    def wants(self, path: str) -> bool:
        return path in (ISSUE, ORACLE_RELEASE) or path in osrelease.PATHS

    def scan(self, layer: LayerFiles) -> ScanResult:
        for path in (osrelease.PATH, ISSUE, ORACLE_RELEASE):
            data = read_file(layer, path)
            dist = oracle_from_text(data) if data is not None else None
            if dist is not None:
                return _one(dist)
        return ScanResult()


# --- SUSE: claircore suse/releases.go values, keyed like the HEAD updater (suse/factory.go) ----


def sles_distribution(major: str) -> Distribution:
    return Distribution(
        did="sles",
        name="SLES",
        version=major,
        version_id=major,
        pretty_name=f"SUSE Linux Enterprise Server {major}",
    )


def leap_distribution(version: str, did: str = "opensuse-leap") -> Distribution:
    return Distribution(
        did=did,
        name="openSUSE Leap",
        version=version,
        version_id=version,
        pretty_name=f"openSUSE Leap {version}",
    )


def suse_from_os_release(kv: dict[str, str]) -> Distribution | None:
    did, version_id = kv.get("ID", ""), kv.get("VERSION_ID", "")
    if not version_id:
        return None
    if did == "sles":  # one OVAL file per major version, all service packs included
        return sles_distribution(version_id.split(".")[0])
    if did == "opensuse-leap" or (did == "opensuse" and kv.get("NAME") == "openSUSE Leap"):
        return leap_distribution(version_id, did)
    return None


_SLES_RELEASE = re.compile(rb"(?i)SUSE Linux Enterprise Server (\d+)")
_OPENSUSE_RELEASE = re.compile(rb"(?i)openSUSE (?:Leap )?(\d+\.\d+)")


def suse_from_release_text(data: bytes) -> Distribution | None:
    if found := _SLES_RELEASE.search(data):
        return sles_distribution(found[1].decode())
    if found := _OPENSUSE_RELEASE.search(data):
        return leap_distribution(found[1].decode(), "opensuse")
    return None


class SuseScanner(Scanner):
    name: ClassVar[str] = "suse"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "distribution"
    ecosystem: ClassVar[str] = "rpm"

    def wants(self, path: str) -> bool:
        return path == SUSE_RELEASE or path in osrelease.PATHS

    def scan(self, layer: LayerFiles) -> ScanResult:
        kv = _os_release(layer)
        dist = suse_from_os_release(kv) if kv is not None else None
        if dist is None and (data := read_file(layer, SUSE_RELEASE)) is not None:
            dist = suse_from_release_text(data)
        return _one(dist)


# --- Photon: claircore photon/distributionscanner.go + photon/releases.go mkDist ---------------


def photon_distribution(version: str) -> Distribution:
    return Distribution(
        did="photon",
        name="VMware Photon OS",
        version=version,
        version_id=version,
        pretty_name="VMware Photon OS/Linux",
    )


_PHOTON_VERSION = re.compile(r"[0-9]+\.[0-9]+")
_PHOTON_RELEASE = re.compile(rb"VMware Photon(?: OS| Linux)?/?(?:Linux)? ([0-9]+\.[0-9]+)")


def photon_from_os_release(kv: dict[str, str]) -> Distribution | None:
    version_id = kv.get("VERSION_ID", "")
    if kv.get("ID") != "photon" or not _PHOTON_VERSION.fullmatch(version_id):
        return None
    return photon_distribution(version_id)


class PhotonScanner(Scanner):
    name: ClassVar[str] = "photon"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "distribution"
    ecosystem: ClassVar[str] = "rpm"

    def wants(self, path: str) -> bool:
        return path == PHOTON_RELEASE or path in osrelease.PATHS

    def scan(self, layer: LayerFiles) -> ScanResult:
        kv = _os_release(layer)
        dist = photon_from_os_release(kv) if kv is not None else None
        if dist is None and (data := read_file(layer, PHOTON_RELEASE)) is not None:
            found = _PHOTON_RELEASE.search(data)
            dist = photon_distribution(found[1].decode()) if found else None
        return _one(dist)
