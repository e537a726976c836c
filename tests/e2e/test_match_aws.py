"""End to end: Amazon Linux 2 and 2023 images matched against the served ALAS feeds.

The images carry Amazon's documented os-release and an rpm database built here by real
`rpmbuild` / `rpm`, holding packages the served advisories name, at versions before and after
their fixes (and a few that must not match: wrong arch, other release's advisory). The
expected advisories are computed from the served updateinfo with rpm's own version compare.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
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
)
from tests.indexer.test_scanners_distributions import AL2, AL2023
from tests.matcher.test_updaters_aws import SERVED, serve_release

X86 = "x86_64"
IMAGES: dict[str, tuple[str, list[SourceRpm]]] = {
    "AL2": (
        AL2,
        [
            SourceRpm("qemu-kvm", "1.5.3", "141.amzn2.5.2", epoch=10, arch=X86),  # before
            SourceRpm("qemu-img", "1.5.3", "141.amzn2.5.3", epoch=10, arch=X86),  # the fix
            SourceRpm("qemu-kvm-tools", "2.0", "1.amzn2", epoch=9, arch=X86),  # lower epoch
            SourceRpm("java-1.8.0-openjdk", "1.8.0.151", "1.b12.amzn2", epoch=1, arch=X86),
            SourceRpm("java-1.8.0-openjdk-headless", "1.8.0.200", "1.amzn2", arch=X86),
            SourceRpm("rsyslog", "8.2204.0", "2.amzn2023.0.1", arch=X86),  # AL2023's advisory
        ],
    ),
    "AL2023": (
        AL2023,
        [
            SourceRpm("rsyslog", "8.2204.0", "2.amzn2023.0.1", arch=X86),  # before
            SourceRpm("rsyslog-mmaudit", "8.2204.0", "3.amzn2023.0.2", arch=X86),  # the fix
            SourceRpm("rsyslog-openssl", "8.2204.0", "4.amzn2023.0.1", arch=X86),  # after
            SourceRpm("rsyslog-doc", "8.2204.0", "2.amzn2023.0.1", arch=X86),  # feed: noarch
            SourceRpm("qemu-kvm", "1.5.3", "141.amzn2.5.2", epoch=10, arch=X86),  # AL2's
        ],
    ),
}


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Combo]:
    updaters = {"sets": ["aws"], "config": {"aws": {"url": feed_server.url}}}
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


def expected_advisories(
    updateinfo_gz: bytes, installed: list[InstalledRpm]
) -> dict[tuple[str, str], set[str]]:
    """(name, Clair version) → ALAS ids whose fixed EVR for the same name and arch is newer."""
    candidates: list[tuple[InstalledRpm, str, str]] = []  # (package, ALAS id, fixed EVR)
    for update in ET.fromstring(gzip.decompress(updateinfo_gz)).iter("update"):
        alas = update.findtext("id", "")
        for fixed in update.iter("package"):
            for pkg in installed:
                if (fixed.get("name"), fixed.get("arch")) == (pkg.name, pkg.arch):
                    evr = f"{fixed.get('epoch')}:{fixed.get('version')}-{fixed.get('release')}"
                    candidates.append((pkg, alas, evr))
    return older_than_fixed(candidates)


async def test_amazon_linux_images_against_alas(
    combo: Combo,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    rpm_builder: RpmBuilder,
    tmp_path: Path,
) -> None:
    served = {label: serve_release(feed_server, shared_data, label) for label in SERVED}
    run = await combo.run_updaters()
    assert run.outcomes == {f"aws-{label}-updater": "updated" for label in SERVED}, run.errors

    for label in IMAGES:
        os_release, sources = IMAGES[label]
        files: dict[str, Entry] = {
            "usr/lib/os-release": os_release.encode(),
            "etc/os-release": Symlink("../usr/lib/os-release"),
        }
        image = await scan_rpm_image(
            combo,
            registry,
            rpm_builder,
            sources,
            tmp_path / label,
            f"amazon-{label.lower()}-e2e",
            files,
        )
        installed, indexed, report = image.installed, image.indexed, image.report
        dist = image.distribution()
        assert (dist["did"], dist["version_id"]) == ("amzn", label.removeprefix("AL"))
        assert len(indexed["packages"]) == len(IMAGES[label][1])

        want = expected_advisories(served[label], installed)
        assert vulnerabilities_by_package(report) == want, label
        for vuln in report["vulnerabilities"].values():
            assert vuln["updater"] == f"aws-{label}-updater"
            assert vuln["distribution"]["version_id"] == label.removeprefix("AL")
        # No CVSS enrichment data was loaded: the section is there and empty.
        assert report["enrichments"] == {}

        if label == "AL2":
            assert want == {
                ("qemu-kvm", "10:1.5.3-141.amzn2.5.2"): {"ALAS2-2018-942"},
                ("qemu-kvm-tools", "9:2.0-1.amzn2"): {"ALAS2-2018-942"},
                ("java-1.8.0-openjdk", "1:1.8.0.151-1.b12.amzn2"): {"ALAS2-2018-949"},
                ("java-1.8.0-openjdk-headless", "1.8.0.200-1.amzn2"): {"ALAS2-2018-949"},
            }
        else:
            assert want == {("rsyslog", "8.2204.0-2.amzn2023.0.1"): {"ALAS2023-2023-001"}}
