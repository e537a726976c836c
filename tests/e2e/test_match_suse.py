"""End to end: a SLES 15 image matched against SUSE's SLES 15 OVAL (the vunnel excerpt).

The image carries SLES 15's documented os-release and an rpm database built here by real
`rpmbuild` / `rpm`, holding packages the excerpt names at versions before, at and after their
fixes, one it names only as "not affected" and the release package it checks. The SUSE OVAL
directory and the gzip-compressed document are served as ftp.suse.com serves them; the
expected advisories are computed here from the document with rpm's own version compare.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.combo import Combo, running_combo, vulnerabilities_by_package
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import Entry
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.rpm_images import scan_rpm_image
from tests.fixtures.rpmbuild import (
    InstalledRpm,
    RpmBuilder,
    SourceRpm,
    older_than_fixed,
)
from tests.matcher.test_updaters_suse import SLES15_FILE, expected_records, serve_suse

X86 = "x86_64"
# SUSE Linux Enterprise Server 15's /etc/os-release as the distribution ships it.
OS_RELEASE = """NAME="SLES"
VERSION="15"
VERSION_ID="15"
PRETTY_NAME="SUSE Linux Enterprise Server 15"
ID="sles"
ID_LIKE="suse"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:suse:sles:15"
"""
SOURCES = [
    # krb5's binaries are fixed in 1.15.2-4.25 (CVE-2010-1323).
    SourceRpm("krb5", "1.15.2", "4.24", binaries=("krb5", "krb5-client"), arch=X86),  # before
    SourceRpm("krb5-server", "1.15.2", "4.25", arch=X86),  # at the fix
    SourceRpm("krb5-plugin-kdb-ldap", "1.16.3", "3.1", arch=X86),  # after
    # kernel-default: two fixes for CVE-2021-29154, both later; arch by pattern match.
    SourceRpm("kernel-default", "4.12.14", "150.69.1", arch=X86),
    SourceRpm("python3-cryptography", "2.8", "3.1", arch=X86),  # "not affected" only
    SourceRpm("sles-release", "15", "64.1", arch=X86),  # release check only
]


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Combo]:
    updaters = {"sets": ["suse"], "config": {"suse": {"url": feed_server.url + "oval/"}}}
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


def arch_applies(arch: str, op: str, installed: str) -> bool:
    if op == "pattern match":
        return re.search(arch, installed) is not None
    if op == "equals":
        return arch == installed
    if op == "not equals":
        return arch != installed
    return True


def expected_advisories(
    document: bytes, installed: list[InstalledRpm]
) -> dict[tuple[str, str], set[str]]:
    candidates = [
        (pkg, title, evr)
        for title, name, evr, arch, op in expected_records(document)
        for pkg in installed
        if pkg.name == name and arch_applies(arch, op, pkg.arch)
    ]
    return older_than_fixed(candidates)


async def test_sles15_image_against_suse_oval(
    combo: Combo,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    rpm_builder: RpmBuilder,
    tmp_path: Path,
) -> None:
    document = serve_suse(feed_server, shared_data)[SLES15_FILE]
    run = await combo.run_updaters()
    assert run.outcomes["suse-updater-suse.linux.enterprise.server.15"] == "updated", run.errors

    files: dict[str, Entry] = {"etc/os-release": OS_RELEASE.encode()}
    image = await scan_rpm_image(
        combo, registry, rpm_builder, SOURCES, tmp_path / "root", "sles15-e2e", files
    )
    installed, report = image.installed, image.report
    assert image.distribution() == {
        "did": "sles",
        "name": "SLES",
        "version": "15",
        "version_code_name": "",
        "version_id": "15",
        "arch": "",
        "cpe": "",
        "pretty_name": "SUSE Linux Enterprise Server 15",
    }
    assert len(image.indexed["packages"]) == len(installed) == 7

    want = expected_advisories(document, installed)
    assert vulnerabilities_by_package(report) == want
    # The oracle, spelled out for the packages chosen above.
    assert want == {
        ("krb5", "1.15.2-4.24"): {"CVE-2010-1323"},
        ("krb5-client", "1.15.2-4.24"): {"CVE-2010-1323"},
        ("kernel-default", "4.12.14-150.69.1"): {"CVE-2021-29154"},
    }
    for vuln in report["vulnerabilities"].values():
        assert vuln["updater"] == "suse-updater-suse.linux.enterprise.server.15"
        assert vuln["distribution"]["pretty_name"] == "SUSE Linux Enterprise Server 15"
    kernel = [
        v for v in report["vulnerabilities"].values() if v["package"]["name"] == "kernel-default"
    ]
    assert sorted(v["fixed_in_version"] for v in kernel) == [
        "0:4.12.14-150.72.1",
        "0:4.12.14-197.89.2",
    ]
    assert {(v["severity"], v["normalized_severity"]) for v in kernel} == {("Important", "High")}
