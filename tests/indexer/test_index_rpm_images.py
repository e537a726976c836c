"""rpm-family images pushed to a real registry and indexed over HTTP by the in-process indexer.

Each image's package set must equal what its own rpm database says: `rpm -qa` (the kept
`rpm-qa.generated.tsv`, upstream `packages.csv`, or real rpm run here over databases built
with Debian's `rpmbuild` and installed with `rpm --justdb`). Distributions are compared field
by field; RHEL images also get their CPE repositories from a content manifest, mapped by Red
Hat's real repository-to-cpe.json served from a local feed server (`$REPO_TO_CPE_URL`, which
Clair honours as well).
"""

from __future__ import annotations

import json
import lzma
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

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
from tests.indexer.harness import Indexer, running_indexer
from tests.indexer.test_index_images import _index
from tests.indexer.test_scanners_distributions import AL2023, SLES15, photon

AL2023_DIR = "layers/amazonlinux-2023-rpm-go-rpmdb"
MARINER_DIR = "layers/cbl-mariner-2.0-rpm-go-rpmdb"
SLE15_DIR = "layers/sle15-bci-rpm-go-rpmdb"
LIBUUID_DIR = "layers/libuuid-bdb-rpm-go-rpmdb"
RELEASEFILES = "layers/claircore/rhel/testdata/releasefiles"
REAL_MAPPING = "feeds/vuls-data-update/pkg/fetch/redhat/repository2cpe/testdata/fixtures"
UBI8_REPORT = (
    "other/claircore/datastore/postgres/testdata/registry.access.redhat.com-ubi8-ubi.index.json"
)
UBI8_MANIFEST = "root/buildinfo/content_manifests/ubi8-container-8.7-1112.json"

# CBL-Mariner 2.0's os-release as the distribution ships it (Microsoft's published image).
MARINER_OS_RELEASE = """NAME="Common Base Linux Mariner"
VERSION="2.0.20230630"
ID=mariner
VERSION_ID="2.0"
PRETTY_NAME="CBL-Mariner/Linux"
ANSI_COLOR="1;34"
HOME_URL="https://aka.ms/cbl-mariner"
BUG_REPORT_URL="https://aka.ms/cbl-mariner"
SUPPORT_URL="https://aka.ms/cbl-mariner"
"""


def oracle_os_release(minor: str) -> str:
    """Oracle Linux Server's documented os-release for release `minor` (e.g. "8.9")."""
    major = minor.split(".")[0]
    return (
        f'NAME="Oracle Linux Server"\nVERSION="{minor}"\nID="ol"\nID_LIKE="fedora"\n'
        f'VARIANT="Server"\nVARIANT_ID="server"\nVERSION_ID="{minor}"\n'
        f'PLATFORM_ID="platform:el{major}"\nPRETTY_NAME="Oracle Linux Server {minor}"\n'
        f'ANSI_COLOR="0;31"\nCPE_NAME="cpe:/o:oracle:linux:{major}:{minor.split(".")[1]}:server"\n'
        'HOME_URL="https://linux.oracle.com/"\nBUG_REPORT_URL="https://github.com/oracle/oracle-linux"\n'
        f'ORACLE_BUGZILLA_PRODUCT="Oracle Linux {major}"\n'
        f'ORACLE_BUGZILLA_PRODUCT_VERSION={minor}\nORACLE_SUPPORT_PRODUCT="Oracle Linux"\n'
        f"ORACLE_SUPPORT_PRODUCT_VERSION={minor}\n"
    )


Row = tuple[str, str, str]  # (name, Clair version, arch)


@pytest.fixture(scope="session")
def rpm_builder(tmp_path_factory: pytest.TempPathFactory) -> RpmBuilder:
    return session_builder(tmp_path_factory)


@pytest.fixture(scope="module")
def real_mapping(shared_data: Path) -> bytes:
    return lzma.decompress((shared_data / REAL_MAPPING / "repository-to-cpe.json.xz").read_bytes())


@pytest.fixture
async def indexer(
    pg_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    real_mapping: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Indexer]:
    feed_server.put("repository-to-cpe.json", real_mapping)
    monkeypatch.setenv("REPO_TO_CPE_URL", feed_server.url + "repository-to-cpe.json")
    async with running_indexer(pg_dsn, tmp_path / "cache") as idx:
        yield idx


def _rows(report: dict[str, Any]) -> set[Row]:
    return {(p["name"], p["version"], p["arch"]) for p in report["packages"].values()}


def _clair_version(epoch: str, version: str, release: str) -> str:
    return f"{epoch}:{version}-{release}" if epoch not in ("", "0") else f"{version}-{release}"


def _tsv_rows(path: Path) -> set[Row]:
    """The kept `rpm -qa` output (name, epoch, version, release, arch, ...), keys dropped."""
    rows = set()
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, epoch, version, release, arch, *_ = line.split("\t")
            if name != "gpg-pubkey":
                rows.add((name, _clair_version(epoch, version, release), arch))
    return rows


def _csv_rows(path: Path) -> set[Row]:
    """Upstream `packages.csv`: epoch¶name¶version¶release¶arch¶..."""
    rows = set()
    for line in path.read_text().splitlines():
        epoch, name, version, release, arch, *_ = line.split("¶")
        if name != "gpg-pubkey":
            rows.add((name, _clair_version(epoch, version, release), arch))
    return rows


def _qa_rows(installed: Sequence[InstalledRpm]) -> set[Row]:
    return {(p.name, p.clair_version, p.arch) for p in installed}


def _distribution(report: dict[str, Any]) -> dict[str, Any]:
    (dist,) = report["distributions"].values()
    return {k: v for k, v in dist.items() if k != "id"}


def _assert_environments(
    report: dict[str, Any],
    package_db: str,
    introduced_in: str | dict[str, str],
    distribution_id: str,
    repository_ids: list[str] | None,
) -> None:
    """One environment per package; `introduced_in` is one layer or a per-name mapping."""
    for pkg_id, pkg in report["packages"].items():
        layer = introduced_in if isinstance(introduced_in, str) else introduced_in[pkg["name"]]
        envs = report["environments"][pkg_id]
        assert envs == [
            {
                "package_db": package_db,
                "introduced_in": layer,
                "distribution_id": distribution_id,
                "repository_ids": repository_ids,
            }
        ], pkg["name"]


def _assert_sources(report: dict[str, Any], sources: Sequence[SourceRpm]) -> None:
    """Each binary names its spec's source package; SOURCERPM names carry no epoch."""
    by_binary = {b: s for s in sources for b in (s.binaries or (s.name,))}
    for pkg in report["packages"].values():
        source = by_binary[pkg["name"]]
        assert pkg["source"]["name"] == source.name, pkg["name"]
        assert pkg["source"]["version"] == f"{source.version}-{source.release}", pkg["name"]
        assert pkg["source"]["kind"] == "source"


def _built_root(builder: RpmBuilder, sources: Sequence[SourceRpm], root: Path) -> Path:
    """Installs `sources`' rpms into `root`'s database; the database directory."""
    return install_rpms(builder.build(sources), root)


def _rpmdb_files(root: Path) -> dict[str, Entry]:
    return files_from_dir(root / "var/lib/rpm", "var/lib/rpm")


# --- real databases --------------------------------------------------------------------------


async def test_amazon_linux_2023(
    indexer: Indexer, registry: LocalRegistry, shared_data: Path
) -> None:
    # The real AL2023 rpmdb.sqlite, with AL2023's documented os-release (test_scanners_
    # distributions.AL2023), linked from etc/ as the image does.
    root = shared_data / AL2023_DIR
    files: dict[str, Entry] = {
        **files_from_dir(root / "var", "var"),
        "usr/lib/os-release": AL2023.encode(),
        "etc/os-release": Symlink("../usr/lib/os-release"),
    }
    manifest, report = await _index(indexer, registry, "al2023", [build_layer(files)])

    expected = _tsv_rows(root / "rpm-qa.generated.tsv")
    assert expected == _csv_rows(root / "packages.csv")  # rpm 4.18 agrees with upstream
    assert len(expected) > 100
    assert _rows(report) == expected
    assert _distribution(report) == {
        "did": "amzn",
        "name": "Amazon Linux",
        "version": "2023",
        "version_code_name": "",
        "version_id": "2023",
        "arch": "",
        "cpe": "cpe:2.3:o:amazon:amazon_linux:2023:*:*:*:*:*:*:*",
        "pretty_name": "Amazon Linux 2023",
    }
    (dist_id,) = report["distributions"]
    _assert_environments(report, "sqlite:var/lib/rpm", manifest.layers[0].hash, dist_id, None)
    assert report["repository"] == {}
    gmp = next(p for p in report["packages"].values() if p["name"] == "gmp")
    assert gmp["version"] == "1:6.2.1-2.amzn2023.0.2"  # a non-zero epoch is kept
    assert gmp["source"] == {**gmp["source"], "name": "gmp", "version": "6.2.1-2.amzn2023.0.2"}
    assert gmp["detector"].startswith("urn:claircore:detector:rpm:")


async def test_cbl_mariner_2(indexer: Indexer, registry: LocalRegistry, shared_data: Path) -> None:
    # The real Mariner rpmdb.sqlite with Mariner's os-release (ID=mariner). No distribution
    # scanner knows Mariner (Clair has none either), so packages carry no distribution.
    root = shared_data / MARINER_DIR
    files: dict[str, Entry] = {
        **files_from_dir(root / "var", "var"),
        "etc/os-release": MARINER_OS_RELEASE.encode(),
    }
    manifest, report = await _index(indexer, registry, "mariner", [build_layer(files, "zstd")])

    expected = _tsv_rows(root / "rpm-qa.generated.tsv")
    assert len(expected) > 100
    assert _rows(report) == expected
    assert report["distributions"] == {}
    _assert_environments(report, "sqlite:var/lib/rpm", manifest.layers[0].hash, "", None)


async def test_sle_15(indexer: Indexer, registry: LocalRegistry, shared_data: Path) -> None:
    # The real SLE 15 BCI ndb Packages.db (SP3 packages) with SLES 15 SP3's os-release.
    root = shared_data / SLE15_DIR
    os_release = SLES15.replace("SP4", "SP3").replace("15.4", "15.3").replace("sp4", "sp3")
    files: dict[str, Entry] = {
        **files_from_dir(root / "var", "var"),
        "etc/os-release": os_release.encode(),
    }
    manifest, report = await _index(indexer, registry, "sle15", [build_layer(files)])

    expected = _csv_rows(root / "packages.csv")
    assert len(expected) == 36
    assert _rows(report) == expected
    assert _distribution(report) == {
        "did": "sles",
        "name": "SLES",
        "version": "15",
        "version_code_name": "",
        "version_id": "15",
        "arch": "",
        "cpe": "",
        "pretty_name": "SUSE Linux Enterprise Server 15",
    }
    (dist_id,) = report["distributions"]
    _assert_environments(report, "ndb:var/lib/rpm", manifest.layers[0].hash, dist_id, None)


async def test_berkeley_db_in_rhel_8_root(
    indexer: Indexer, registry: LocalRegistry, shared_data: Path
) -> None:
    # The one-package Berkeley DB `Packages` (libuuid, el8_8) in a RHEL 8 root: claircore's
    # real RHEL 8 os-release and redhat-release. No content manifest: no CPE repositories.
    files: dict[str, Entry] = {
        **files_from_dir(shared_data / LIBUUID_DIR / "var", "var"),
        **files_from_dir(shared_data / RELEASEFILES / "8"),
    }
    manifest, report = await _index(indexer, registry, "libuuid", [build_layer(files)])

    assert _rows(report) == _tsv_rows(shared_data / LIBUUID_DIR / "rpm-qa.generated.tsv")
    assert _rows(report) == {("libuuid", "2.32.1-42.el8_8", "x86_64")}
    assert _distribution(report) == _ubi8_distribution(shared_data)
    (dist_id,) = report["distributions"]
    _assert_environments(report, "bdb:var/lib/rpm", manifest.layers[0].hash, dist_id, None)
    (pkg,) = report["packages"].values()
    assert (pkg["source"]["name"], pkg["source"]["version"]) == ("util-linux", "2.32.1-42.el8_8")


# --- RHEL 8 with content-manifest CPEs ---------------------------------------------------------


def _ubi8_report(shared_data: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((shared_data / UBI8_REPORT).read_text())
    return report


def _ubi8_distribution(shared_data: Path) -> dict[str, Any]:
    return _distribution(_ubi8_report(shared_data))


# Names and EVRs from the RHEL 8 OVAL sample (feeds/claircore/rhel/testdata/com.redhat.rhsa-
# RHEL8.xml) and the UBI 8 rpm manifest, some before their fix and some at or after it:
# openssl-libs < 1:1.1.1c-2.el8, curl/libcurl > 7.61.1-11.el8, systemd-libs = 239-13.el8_0.3,
# dbus-libs < 1:1.12.8-9.el8, platform-python/python3-libs = 3.6.8-15.1.el8.
RHEL8_BASE = (
    SourceRpm("openssl", "1.1.1", "8.el8", epoch=1, binaries=("openssl-libs",), arch="x86_64"),
    SourceRpm("curl", "7.61.1", "12.el8", binaries=("curl", "libcurl"), arch="x86_64"),
    SourceRpm("systemd", "239", "13.el8_0.3", binaries=("systemd-libs",), arch="x86_64"),
    SourceRpm("dbus", "1.12.8", "7.el8", epoch=1, binaries=("dbus-libs",), arch="x86_64"),
    SourceRpm(
        "python3",
        "3.6.8",
        "15.1.el8",
        binaries=("platform-python", "python3-libs"),
        arch="x86_64",
    ),
    SourceRpm("tzdata", "2019a", "1.el8", epoch=0),
)
# A modular package the user adds on top: the OVAL's fixed nodejs:10 build. Its full
# modularity label (stream version and context) is made up; Clair keeps only name:stream.
RHEL8_USER = (
    SourceRpm(
        "nodejs",
        "10.16.3",
        "2.module+el8.0.0+4214+49953fda",
        epoch=1,
        arch="x86_64",
        modularity_label="nodejs:10:8000020190904103000:9edba152",
    ),
)


async def test_rhel_8_with_content_manifest(
    indexer: Indexer,
    registry: LocalRegistry,
    shared_data: Path,
    rpm_builder: RpmBuilder,
    tmp_path: Path,
) -> None:
    # Layer 1, a UBI-like base: test-built sqlite rpmdb (RHEL8_BASE), claircore's real RHEL 8
    # os-release/redhat-release, and a content manifest naming the RHEL 8 BaseOS and AppStream
    # repositories. Layer 2, a user's layer without a manifest: the database rewritten with
    # nodejs added. Every package gets the base layer's CPE repositories (Clair shares them).
    base_root, user_root = tmp_path / "base", tmp_path / "user"
    base_db = _built_root(rpm_builder, RHEL8_BASE, base_root)
    shutil.copytree(base_root, user_root)
    user_db = _built_root(rpm_builder, RHEL8_USER, user_root)
    content_sets = ["rhel-8-for-x86_64-baseos-rpms", "rhel-8-for-x86_64-appstream-rpms"]
    base: dict[str, Entry] = {
        **files_from_dir(shared_data / RELEASEFILES / "8"),
        **_rpmdb_files(base_root),
        UBI8_MANIFEST: json.dumps({"content_sets": content_sets}).encode(),
    }
    user = _rpmdb_files(user_root)
    manifest, report = await _index(
        indexer, registry, "ubi8", [build_layer(base), build_layer(user)]
    )

    expected = _qa_rows(rpm_qa(user_db))
    assert len(_qa_rows(rpm_qa(base_db))) == 8 and len(expected) == 9
    assert _rows(report) == expected
    assert ("tzdata", "2019a-1.el8", "noarch") in expected  # explicit Epoch: 0 is not shown
    assert ("openssl-libs", "1:1.1.1-8.el8", "x86_64") in expected
    _assert_sources(report, [*RHEL8_BASE, *RHEL8_USER])
    nodejs = next(p for p in report["packages"].values() if p["name"] == "nodejs")
    assert nodejs["module"] == "nodejs:10"

    # The distribution and CPE repositories are exactly those of Clair's real UBI 8 report.
    ubi8 = _ubi8_report(shared_data)
    assert _distribution(report) == _distribution(ubi8)
    want_repos = sorted(
        (r["name"], r["key"], r["cpe"])
        for r in ubi8["repository"].values()
        if r.get("key") == "rhel-cpe-repository"
    )
    got_repos = sorted((r["name"], r["key"], r["cpe"]) for r in report["repository"].values())
    assert got_repos == want_repos and len(got_repos) == 4
    repo_ids = sorted(report["repository"], key=int)
    (dist_id,) = report["distributions"]
    layers = {p["name"]: manifest.layers[0].hash for p in report["packages"].values()}
    layers["nodejs"] = manifest.layers[1].hash
    for envs in report["environments"].values():
        envs[0]["repository_ids"] = sorted(envs[0]["repository_ids"], key=int)
    _assert_environments(report, "sqlite:var/lib/rpm", layers, dist_id, repo_ids)


# --- Oracle Linux and Photon, test-built databases ------------------------------------------------

# Names and EVRs from the Oracle ELSA OVAL excerpt (vunnel mock_per_arch_data, vuls-data-update
# elsa-all): osbuild < 0:110-1.0.1.el8, osbuild-composer = 0:101-1.el8, hivex (module virt:ol)
# < 0:1.3.18-21.module+el8.7.0+21037+8ee66348. The excerpts hold no Oracle Linux 9 advisory,
# so the OL 9 image carries the same names with el9 releases.
ORACLE_SOURCES = {
    "8": (
        SourceRpm(
            "osbuild", "110", "1.el8", binaries=("osbuild", "python3-osbuild", "osbuild-selinux")
        ),
        SourceRpm(
            "osbuild-composer",
            "101",
            "1.el8",
            binaries=("osbuild-composer", "osbuild-composer-core"),
            arch="x86_64",
        ),
        SourceRpm(
            "hivex",
            "1.3.18",
            "20.module+el8.6.0+20693+c3fbd1ee",
            arch="x86_64",
            modularity_label="virt:ol:8060020220512141108:bd9e2e1b",
        ),
    ),
    "9": (
        SourceRpm("osbuild", "110", "1.0.1.el9", binaries=("osbuild", "python3-osbuild")),
        SourceRpm("osbuild-composer", "101", "1.0.1.el9", arch="x86_64"),
    ),
}
ORACLE_MINOR = {"8": "8.9", "9": "9.3"}


@pytest.mark.parametrize("major", ["8", "9"])
async def test_oracle_linux(
    indexer: Indexer,
    registry: LocalRegistry,
    shared_data: Path,
    rpm_builder: RpmBuilder,
    tmp_path: Path,
    major: str,
) -> None:
    # Test-built sqlite rpmdb (ORACLE_SOURCES[major]); claircore's real oracle-release and
    # redhat-release of that release, plus Oracle's documented os-release written here.
    # The unmodified redhat-release must not make it RHEL.
    sources = ORACLE_SOURCES[major]
    root = tmp_path / "root"
    dbdir = _built_root(rpm_builder, sources, root)
    files: dict[str, Entry] = {
        **files_from_dir(shared_data / RELEASEFILES / f"oracle-{major}"),
        **_rpmdb_files(root),
        "etc/os-release": oracle_os_release(ORACLE_MINOR[major]).encode(),
    }
    manifest, report = await _index(indexer, registry, f"oraclelinux{major}", [build_layer(files)])

    assert _rows(report) == _qa_rows(rpm_qa(dbdir))
    assert len(report["packages"]) == sum(len(s.binaries or (s.name,)) for s in sources)
    _assert_sources(report, sources)
    assert _distribution(report) == {
        "did": "ol",
        "name": "Oracle Linux Server",
        "version": major,
        "version_code_name": f"Oracle Linux {major}",
        "version_id": major,
        "arch": "",
        "cpe": "",
        "pretty_name": f"Oracle Linux Server {major}",
    }
    (dist_id,) = report["distributions"]
    _assert_environments(report, "sqlite:var/lib/rpm", manifest.layers[0].hash, dist_id, None)
    modules = {p["name"]: p.get("module", "") for p in report["packages"].values()}
    assert modules == {n: "virt:ol" if n == "hivex" else "" for n in modules}
    assert ("hivex" in modules) == (major == "8")


# Names and EVRs from the Photon 3 OVAL (feeds/claircore/photon/testdata/com.vmware.phsa-
# photon3.xml): curl/curl-libs between fixes 7.61.1-3.ph3 and -5.ph3, openssl at its fix
# 1.0.2u-1.ph3, bash before 4.4.18-2.ph3, sqlite-libs before 3.27.2-5.ph3, glibc before 2.28-3.ph3.
PHOTON3_SOURCES = (
    SourceRpm("curl", "7.61.1", "4.ph3", binaries=("curl", "curl-libs"), arch="x86_64"),
    SourceRpm("openssl", "1.0.2u", "1.ph3", arch="x86_64"),
    SourceRpm("bash", "4.4.18", "1.ph3", arch="x86_64"),
    SourceRpm("sqlite", "3.27.2", "3.ph3", binaries=("sqlite-libs",), arch="x86_64"),
    SourceRpm("glibc", "2.28", "2.ph3", arch="x86_64"),
)


async def test_photon_3(
    indexer: Indexer,
    registry: LocalRegistry,
    rpm_builder: RpmBuilder,
    tmp_path: Path,
) -> None:
    # Test-built sqlite rpmdb (PHOTON3_SOURCES) with Photon 3.0's documented os-release
    # (test_scanners_distributions.photon) and photon-release.
    root = tmp_path / "root"
    dbdir = _built_root(rpm_builder, PHOTON3_SOURCES, root)
    files: dict[str, Entry] = {
        **_rpmdb_files(root),
        "etc/os-release": photon("3.0").encode(),
        "etc/photon-release": b"VMware Photon OS 3.0\nPHOTON_BUILD_NUMBER=a0f216d\n",
    }
    manifest, report = await _index(indexer, registry, "photon3", [build_layer(files)])

    assert _rows(report) == _qa_rows(rpm_qa(dbdir))
    assert len(report["packages"]) == 6
    _assert_sources(report, PHOTON3_SOURCES)
    assert _distribution(report) == {
        "did": "photon",
        "name": "VMware Photon OS",
        "version": "3.0",
        "version_code_name": "",
        "version_id": "3.0",
        "arch": "",
        "cpe": "",
        "pretty_name": "VMware Photon OS/Linux",
    }
    (dist_id,) = report["distributions"]
    _assert_environments(report, "sqlite:var/lib/rpm", manifest.layers[0].hash, dist_id, None)
