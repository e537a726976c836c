"""End to end: a Photon OS 3.0 image matched against Photon's full Photon 3 OVAL document.

The image carries Photon 3's documented os-release and an rpm database built here by real
`rpmbuild` / `rpm`, holding packages the OVAL names at versions before, at and after their
fixes, plus one it only uses for its release check. The document is served as plain XML, as
packages.vmware.com does; the expected advisories are computed here from it with rpm's own
version compare.
"""

from __future__ import annotations

import lzma
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.combo import Combo, running_combo, vulnerabilities_by_package
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import Entry, Symlink
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.rpm_images import scan_rpm_image
from tests.fixtures.rpmbuild import (
    InstalledRpm,
    RpmBuilder,
    SourceRpm,
    older_than_fixed,
    oval_rpm_fixes,
)

PHOTON3 = "feeds/claircore/photon/testdata/com.vmware.phsa-photon3.xml.xz"
DOCUMENT = "com.vmware.phsa-photon3.xml"
X86 = "x86_64"
# Photon OS 3.0's /etc/os-release as the distribution ships it.
OS_RELEASE = """NAME="VMware Photon OS"
VERSION="3.0"
ID=photon
VERSION_ID=3.0
PRETTY_NAME="VMware Photon OS/Linux"
ANSI_COLOR="1;34"
HOME_URL="https://vmware.github.io/photon/"
BUG_REPORT_URL="https://github.com/vmware/photon/issues"
"""
PHOTON_RELEASE = "VMware Photon OS 3.0\nPHOTON_BUILD_NUMBER=26156e2\n"
SOURCES = [
    # sqlite: fixes at -1, -2, -3, -5 and 3.31.1-1; -4 sits between them.
    SourceRpm("sqlite", "3.27.2", "4.ph3", binaries=("sqlite", "sqlite-libs"), arch=X86),
    # openssl: exactly at the first fix (1.0.2t-1), before the second (1.0.2u-1).
    SourceRpm("openssl", "1.0.2t", "1.ph3", arch=X86),
    # curl: at the newest fix.
    SourceRpm("curl", "7.61.1", "5.ph3", binaries=("curl", "curl-libs"), arch=X86),
    SourceRpm("linux", "4.19.65", "1.ph3", binaries=("linux", "linux-devel"), arch=X86),
    SourceRpm("linux-esx", "4.19.97", "1.ph3", arch=X86),  # newest fix
    SourceRpm("python3", "3.7.3", "3.ph3", arch=X86),  # equal to one fix, before two
    SourceRpm("systemd", "239", "15.ph3", arch=X86),  # after every fix
    SourceRpm("photon-release", "3.0", "4.ph3", arch="noarch"),  # release check only
]


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Combo]:
    updaters = {"sets": ["photon"], "config": {"photon": {"url": feed_server.url}}}
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


def expected_advisories(
    document: bytes, installed: list[InstalledRpm]
) -> dict[tuple[str, str], set[str]]:
    candidates = [
        (pkg, title, evr)
        for title, name, evr in oval_rpm_fixes(document)
        for pkg in installed
        if pkg.name == name
    ]
    return older_than_fixed(candidates)


async def test_photon3_image_against_photon_oval(
    combo: Combo,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    rpm_builder: RpmBuilder,
    tmp_path: Path,
) -> None:
    document = lzma.decompress((shared_data / PHOTON3).read_bytes())
    feed_server.put(DOCUMENT, document)
    run = await combo.run_updaters()
    assert run.outcomes["photon-updater-3.0"] == "updated", run.errors

    files: dict[str, Entry] = {
        "usr/lib/os-release": OS_RELEASE.encode(),
        "etc/os-release": Symlink("../usr/lib/os-release"),
        "etc/photon-release": PHOTON_RELEASE.encode(),
    }
    image = await scan_rpm_image(
        combo, registry, rpm_builder, SOURCES, tmp_path / "root", "photon3-e2e", files
    )
    installed, report = image.installed, image.report
    assert image.distribution() == {
        "did": "photon",
        "name": "VMware Photon OS",
        "version": "3.0",
        "version_code_name": "",
        "version_id": "3.0",
        "arch": "",
        "cpe": "",
        "pretty_name": "VMware Photon OS/Linux",
    }
    assert len(image.indexed["packages"]) == len(installed) == 11

    want = expected_advisories(document, installed)
    assert vulnerabilities_by_package(report) == want
    for vuln in report["vulnerabilities"].values():
        assert vuln["updater"] == "photon-updater-3.0"
        assert vuln["distribution"]["version"] == "3.0"

    # The oracle itself, spelled out for the packages chosen above.
    assert set(want) == {
        ("sqlite", "3.27.2-4.ph3"),
        ("sqlite-libs", "3.27.2-4.ph3"),
        ("openssl", "1.0.2t-1.ph3"),
        ("linux", "4.19.65-1.ph3"),
        ("linux-devel", "4.19.65-1.ph3"),
        ("python3", "3.7.3-3.ph3"),
    }
    assert {t.split()[0] for t in want[("sqlite", "3.27.2-4.ph3")]} == {
        "PHSA-2020:00001",
        *{
            t.split()[0]
            for t, n, e in oval_rpm_fixes(document)
            if n == "sqlite" and e == "0:3.31.1-1.ph3"
        },
    }
    assert len(want[("openssl", "1.0.2t-1.ph3")]) == 1
    assert len(want[("python3", "3.7.3-3.ph3")]) == 2
    assert len(want[("linux", "4.19.65-1.ph3")]) >= 6
