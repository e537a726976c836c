"""End to end: an Oracle Linux 8 image matched against real ELSA OVAL excerpts.

The OL8 definitions in the shared data are ELSA-2021-9151 (openssl, ksplice builds; vunnel's
excerpt) and ELSA-2023-12342 (hivex in module virt:kvm_utils; vuls-data-update's excerpt,
which also holds an Oracle Linux 5 bind advisory). They are served bzip2-compressed as the
2021 and 2023 documents, as linux.oracle.com serves them. The image carries Oracle Linux
8.7's documented os-release and release files and an rpm database built here by real
`rpmbuild` / `rpm`, with packages before and at the fixes, and one only the OL5 advisory names.
The expected advisories are computed here from the served documents with rpm's own compare.
"""

from __future__ import annotations

import bz2
import re
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

KSPLICE = "feeds/vunnel/tests/unit/providers/oracle/test-fixtures/mock_ksplice_data"
ELSA_ALL = (
    "feeds/vuls-data-update/pkg/fetch/oracle/linux/testdata/fixtures/com.oracle.elsa-all.xml.bz2"
)
X86 = "x86_64"
# Oracle Linux Server 8.7's /etc/os-release as the distribution ships it.
OS_RELEASE = """NAME="Oracle Linux Server"
VERSION="8.7"
ID="ol"
ID_LIKE="fedora"
VARIANT="Server"
VARIANT_ID="server"
VERSION_ID="8.7"
PLATFORM_ID="platform:el8"
PRETTY_NAME="Oracle Linux Server 8.7"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:oracle:linux:8:7:server"
HOME_URL="https://linux.oracle.com/"
BUG_REPORT_URL="https://bugzilla.oracle.com/"

ORACLE_BUGZILLA_PRODUCT="Oracle Linux 8"
ORACLE_BUGZILLA_PRODUCT_VERSION=8.7
ORACLE_SUPPORT_PRODUCT="Oracle Linux"
ORACLE_SUPPORT_PRODUCT_VERSION=8.7
"""
SOURCES = [
    # openssl: epoch 1 is before the ksplice fix's epoch 2, for both binaries.
    SourceRpm(
        "openssl", "1.1.1k", "7.el8_6", epoch=1, binaries=("openssl", "openssl-libs"), arch=X86
    ),
    # openssl-perl: exactly the fixed build.
    SourceRpm("openssl-perl", "1.1.1g", "15.ksplice1.el8_3", epoch=2, arch=X86),
    # hivex from the virt:kvm_utils module stream, one build before the fix.
    SourceRpm(
        "hivex",
        "1.3.18",
        "20.module+el8.7.0+20872+1a9cbbf3",
        arch=X86,
        modularity_label="virt:kvm_utils:8070020221219170523:5d8b2b6c",
    ),
    # bind: only the Oracle Linux 5 advisory names it; an OL8 image must not get it.
    SourceRpm("bind", "9.11.36", "5.el8", epoch=32, arch=X86),
]


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Combo]:
    updaters = {
        "sets": ["oracle"],
        "config": {"oracle": {"url": feed_server.url, "years": [2021, 2023]}},
    }
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


def expected_advisories(
    documents: list[bytes], installed: list[InstalledRpm]
) -> dict[tuple[str, str], set[str]]:
    candidates = [
        (pkg, title, evr)
        for doc in documents
        for title, name, evr in oval_rpm_fixes(doc, "Oracle Linux 8")
        for pkg in installed
        if pkg.name == name
    ]
    return older_than_fixed(candidates)


async def test_oracle_linux_8_image_against_elsa(
    combo: Combo,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    rpm_builder: RpmBuilder,
    tmp_path: Path,
) -> None:
    ksplice = (shared_data / KSPLICE).read_bytes()
    elsa_all = (shared_data / ELSA_ALL).read_bytes()
    feed_server.put("com.oracle.elsa-2021.xml.bz2", bz2.compress(ksplice))
    feed_server.put("com.oracle.elsa-2023.xml.bz2", elsa_all)
    run = await combo.run_updaters()
    assert run.outcomes == {
        "oracle-2021-updater": "updated",
        "oracle-2023-updater": "updated",
    }, run.errors

    files: dict[str, Entry] = {
        "etc/os-release": OS_RELEASE.encode(),
        "usr/lib/os-release": Symlink("../../etc/os-release"),
        "etc/oracle-release": b"Oracle Linux Server release 8.7\n",
        "etc/redhat-release": b"Red Hat Enterprise Linux release 8.7 (Ootpa)\n",
        "etc/system-release": Symlink("oracle-release"),
    }
    image = await scan_rpm_image(
        combo, registry, rpm_builder, SOURCES, tmp_path / "root", "oraclelinux8-e2e", files
    )
    installed, indexed, report = image.installed, image.indexed, image.report
    assert image.distribution() == {
        "did": "ol",
        "name": "Oracle Linux Server",
        "version": "8",
        "version_code_name": "Oracle Linux 8",
        "version_id": "8",
        "arch": "",
        "cpe": "",
        "pretty_name": "Oracle Linux Server 8",
    }
    assert len(indexed["packages"]) == len(installed) == 5
    modules = {p["name"]: p.get("module", "") for p in indexed["packages"].values()}
    assert modules["hivex"] == "virt:kvm_utils"

    want = expected_advisories([ksplice, bz2.decompress(elsa_all)], installed)
    assert vulnerabilities_by_package(report) == want
    for vuln in report["vulnerabilities"].values():
        assert vuln["distribution"]["version"] == "8"
        assert vuln["updater"] in ("oracle-2021-updater", "oracle-2023-updater")

    # The oracle itself, spelled out (titles as the XML writes them, whitespace and all).
    def named(titles: set[str]) -> set[str]:
        return {re.sub(r"\s+", " ", t).strip() for t in titles}

    assert {k: named(v) for k, v in want.items()} == {
        ("openssl", "1:1.1.1k-7.el8_6"): {"ELSA-2021-9151: openssl security update (IMPORTANT)"},
        ("openssl-libs", "1:1.1.1k-7.el8_6"): {
            "ELSA-2021-9151: openssl security update (IMPORTANT)"
        },
        ("hivex", "1.3.18-20.module+el8.7.0+20872+1a9cbbf3"): {
            "ELSA-2023-12342: virt:kvm_utils security update (IMPORTANT)"
        },
    }
    hivex = [v for v in report["vulnerabilities"].values() if v["package"]["name"] == "hivex"]
    assert [v["package"].get("module") for v in hivex] == ["virt:kvm_utils"]
    assert [v["normalized_severity"] for v in hivex] == ["High"]
