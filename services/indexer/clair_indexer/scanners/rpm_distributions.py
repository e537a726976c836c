"""Distribution scanners of the rpm-based systems: RHEL, Amazon Linux, Oracle, SUSE, Photon.

The records themselves come from :mod:`clair_common.distributions`, which the matching
updaters use too: they must be equal (clair-api.md 7.2) for the matcher's lookups to hit.
"""

from __future__ import annotations

import re
from typing import ClassVar

from clair_common.distributions import (
    amazon_linux_distribution,
    leap_distribution,
    oracle_distribution,
    photon_distribution,
    rhel_distribution,
    sles_distribution,
)
from clair_common.models import Distribution

from . import osrelease
from .base import LayerFiles, Scanner, ScanResult, exists, read_file

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


def rhel_from_release_text(data: bytes) -> Distribution | None:
    found = _RHEL_RELEASE.search(data)
    return rhel_distribution(int(found[1])) if found else None


class RhelScanner(Scanner):
    name: ClassVar[str] = "rhel"
    version: ClassVar[str] = "2"
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

# os-release's CPE_NAME of each claircore aws/releases.go release.
_AWS_RELEASES: tuple[tuple[re.Pattern[bytes], str], ...] = (
    (re.compile(rb'CPE_NAME="cpe:/o:amazon:linux:201.\.0[39]:ga"'), "2018.03"),
    (re.compile(rb'CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2"'), "2"),
    (re.compile(rb'CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"'), "2023"),
)


def aws_from_os_release_text(data: bytes) -> Distribution | None:
    for pattern, version in _AWS_RELEASES:
        if pattern.search(data):
            return amazon_linux_distribution(version)
    return None


class AwsScanner(Scanner):
    name: ClassVar[str] = "aws"
    version: ClassVar[str] = "2"
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


def oracle_from_text(data: bytes) -> Distribution | None:
    found = _ORACLE_RELEASE.search(data)
    return oracle_distribution(int(found[1])) if found else None


class OracleScanner(Scanner):
    name: ClassVar[str] = "oracle"
    version: ClassVar[str] = "v0.0.1"
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
    version: ClassVar[str] = "v0.0.1"
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


_PHOTON_VERSION = re.compile(r"[0-9]+\.[0-9]+")
_PHOTON_RELEASE = re.compile(rb"VMware Photon(?: OS| Linux)?/?(?:Linux)? ([0-9]+\.[0-9]+)")


def photon_from_os_release(kv: dict[str, str]) -> Distribution | None:
    version_id = kv.get("VERSION_ID", "")
    if kv.get("ID") != "photon" or not _PHOTON_VERSION.fullmatch(version_id):
        return None
    return photon_distribution(version_id)


class PhotonScanner(Scanner):
    name: ClassVar[str] = "photon"
    version: ClassVar[str] = "v0.0.1"
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
