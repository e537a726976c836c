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
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.combo import Combo, running_combo, vulnerabilities_by_package
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import Entry, Symlink, build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.rpmbuild import (
    InstalledRpm,
    RpmBuilder,
    SourceRpm,
    install_rpms,
    rpm_qa,
    session_builder,
)

KSPLICE = "feeds/vunnel/tests/unit/providers/oracle/test-fixtures/mock_ksplice_data"
ELSA_ALL = (
    "feeds/vuls-data-update/pkg/fetch/oracle/linux/testdata/fixtures/com.oracle.elsa-all.xml.bz2"
)
OVAL = "{http://oval.mitre.org/XMLSchema/oval-definitions-5}"
LINUX = "{http://oval.mitre.org/XMLSchema/oval-definitions-5#linux}"
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


@pytest.fixture(scope="session")
def rpm_builder(tmp_path_factory: pytest.TempPathFactory) -> RpmBuilder:
    return session_builder(tmp_path_factory)


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Combo]:
    updaters = {
        "sets": ["oracle"],
        "config": {"oracle": {"url": feed_server.url, "years": [2021, 2023]}},
    }
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


def rpm_vercmp(pairs: list[tuple[str, str]]) -> list[int]:
    """rpm's own `rpm.vercmp` over (a, b) EVR pairs, in one `rpm --eval`."""
    calls = "".join(f'print(rpm.vercmp("{a}", "{b}")) print(" ") ' for a, b in pairs)
    out = subprocess.run(
        ["rpm", "--eval", f"%{{lua: {calls}}}"], check=True, capture_output=True, text=True
    ).stdout
    return [int(x) for x in out.split()]


def ol8_fixes(document: bytes) -> list[tuple[str, str, str]]:
    """(title, package name, fixed EVR) of every OL8 definition's rpminfo check with an EVR."""
    root = ET.fromstring(document)
    tests = {t.get("id"): t for t in root.iter(f"{LINUX}rpminfo_test")}
    names = {o.get("id"): o.findtext(f"{LINUX}name") for o in root.iter(f"{LINUX}rpminfo_object")}
    evrs = {s.get("id"): s.findtext(f"{LINUX}evr") for s in root.iter(f"{LINUX}rpminfo_state")}
    out = []
    for defn in root.iter(f"{OVAL}definition"):
        if "Oracle Linux 8" not in [p.text for p in defn.iter(f"{OVAL}platform")]:
            continue
        title = defn.findtext(f"{OVAL}metadata/{OVAL}title") or ""
        for criterion in defn.iter(f"{OVAL}criterion"):
            test = tests.get(criterion.get("test_ref"))
            if test is None:
                continue
            obj, state = test.find(f"{LINUX}object"), test.find(f"{LINUX}state")
            assert obj is not None and state is not None
            evr, name = evrs.get(state.get("state_ref")), names.get(obj.get("object_ref"))
            if evr is not None and name:
                out.append((title, name, evr))
    return out


def expected_advisories(
    documents: list[bytes], installed: list[InstalledRpm]
) -> dict[tuple[str, str], set[str]]:
    candidates = [
        (pkg, title, evr)
        for doc in documents
        for title, name, evr in ol8_fixes(doc)
        for pkg in installed
        if pkg.name == name
    ]
    pairs = [(f"{p.epoch or 0}:{p.version}-{p.release}", evr) for p, _, evr in candidates]
    out: dict[tuple[str, str], set[str]] = {}
    for (pkg, title, _), cmp in zip(candidates, rpm_vercmp(pairs), strict=True):
        if cmp < 0:
            out.setdefault((pkg.name, pkg.clair_version), set()).add(title)
    return out


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

    dbdir = install_rpms(rpm_builder.build(SOURCES), tmp_path / "root")
    files: dict[str, Entry] = {
        **files_from_dir(dbdir, "var/lib/rpm"),
        "etc/os-release": OS_RELEASE.encode(),
        "usr/lib/os-release": Symlink("../../etc/os-release"),
        "etc/oracle-release": b"Oracle Linux Server release 8.7\n",
        "etc/redhat-release": b"Red Hat Enterprise Linux release 8.7 (Ootpa)\n",
        "etc/system-release": Symlink("oracle-release"),
    }
    manifest = await registry.push_image("oraclelinux8-e2e", [build_layer(files)])
    indexed = await combo.index(manifest)
    (dist,) = indexed["distributions"].values()
    assert {k: v for k, v in dist.items() if k != "id"} == {
        "did": "ol",
        "name": "Oracle Linux Server",
        "version": "8",
        "version_code_name": "Oracle Linux 8",
        "version_id": "8",
        "arch": "",
        "cpe": "",
        "pretty_name": "Oracle Linux Server 8",
    }
    installed = rpm_qa(dbdir)
    assert len(indexed["packages"]) == len(installed) == 5
    modules = {p["name"]: p.get("module", "") for p in indexed["packages"].values()}
    assert modules["hivex"] == "virt:kvm_utils"

    report = await combo.vulnerability_report(manifest.hash)
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
