"""The `rpm` package scanner over real layers and rpm-built databases."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clair_indexer.rpmdb import RpmDBError
from clair_indexer.scanners.base import detector
from clair_indexer.scanners.rpm import RpmScanner, parse_source_rpm
from tests.indexer.test_rpmdb import (
    AL2023,
    LIBUUID,
    MARINER,
    SLE15,
    built_rpmdb,
    tsv_rows,
)
from tests.indexer.test_scanners_base import layer_from_dir, layer_of

__all__ = ["built_rpmdb"]  # the fixture, shared with test_rpmdb


def test_identity() -> None:
    scanner = RpmScanner()
    assert (scanner.name, scanner.kind, scanner.ecosystem) == ("rpm", "package", "rpm")
    assert detector(scanner) == f"urn:claircore:detector:rpm:{scanner.version}:package"


@pytest.mark.parametrize(
    "path",
    [
        "var/lib/rpm/rpmdb.sqlite",
        "var/lib/rpm/Packages",
        "var/lib/rpm/Packages.db",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
        "usr/lib/sysimage/rpm/Packages.db",
        "usr/share/rpm/Packages",
    ],
)
def test_wants_database_files(path: str) -> None:
    assert RpmScanner().wants(path)


@pytest.mark.parametrize(
    "path",
    [
        "var/lib/rpm/Packages.bak",
        "var/lib/rpm/rpmdb.sqlite-wal",
        "var/lib/rpm/Name",
        "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages",
        "var/lib/dpkg/status",
    ],
)
def test_ignores_other_files(path: str) -> None:
    assert not RpmScanner().wants(path)


@pytest.mark.parametrize(
    ("srpm", "want"),
    [
        ("glibc-2.31-150300.41.1.src.rpm", ("glibc", "2.31-150300.41.1")),
        ("util-linux-2.32.1-42.el8_8.src.rpm", ("util-linux", "2.32.1-42.el8_8")),
        ("foo-bar-1:2.0-3.el9.src.rpm", ("foo-bar", "1:2.0-3.el9")),
        ("foo-0:2.0-3.src.rpm", ("foo", "2.0-3")),
        ("foo-2.0-3.el8.noarch.src.rpm", ("foo", "2.0-3.el8")),
        ("kernel-5.14-1.nosrc.rpm", ("kernel", "5.14-1")),
        ("nodash.src.rpm", None),
        ("onlyversion-1.src.rpm", None),
        ("(none)", None),
        ("", None),
    ],
)
def test_parse_source_rpm(srpm: str, want: tuple[str, str] | None) -> None:
    assert parse_source_rpm(srpm) == want


def test_amazon_linux_2023_layer(shared_data: Path) -> None:
    root = shared_data / AL2023
    result = RpmScanner().scan(layer_from_dir(root, [RpmScanner()]))
    want = [
        r for r in tsv_rows((root / "rpm-qa.generated.tsv").read_text()) if r[0] != "gpg-pubkey"
    ]
    assert len(result.packages) == len(want) == 102
    got = sorted(
        (
            p.name,
            p.version,
            p.arch,
            p.source.name if p.source else "",
            p.source.version if p.source else "",
        )
        for p in result.packages
    )
    expected = []
    for name, epoch, version, release, arch, srpm, _module in want:
        evr = f"{epoch}:{version}-{release}" if epoch not in ("", "0") else f"{version}-{release}"
        source = parse_source_rpm(srpm)
        assert source is not None
        expected.append((name, evr, arch, *source))
    assert got == sorted(expected)
    assert {p.package_db for p in result.packages} == {"sqlite:var/lib/rpm"}
    assert all(
        p.kind == "binary" and p.source and p.source.kind == "source" for p in result.packages
    )
    openssl = next(p for p in result.packages if p.name == "openssl-libs")
    assert openssl.version == "1:3.0.8-1.amzn2023.0.4"
    assert openssl.source is not None
    assert (openssl.source.name, openssl.source.version) == ("openssl", "3.0.8-1.amzn2023.0.4")
    assert openssl.repository_hint.startswith("hash=sha256%3A")
    # One source object per SOURCERPM, shared by its binaries (as Clair does).
    certs = [p for p in result.packages if p.source and p.source.name == "ca-certificates"]
    assert len({id(p.source) for p in certs}) == 1


@pytest.mark.parametrize(
    ("layer", "package_db", "count"),
    [
        (MARINER, "sqlite:var/lib/rpm", 129),
        (SLE15, "ndb:var/lib/rpm", 36),
        (LIBUUID, "bdb:var/lib/rpm", 1),
    ],
)
def test_other_backends(shared_data: Path, layer: str, package_db: str, count: int) -> None:
    result = RpmScanner().scan(layer_from_dir(shared_data / layer, [RpmScanner()]))
    assert len(result.packages) == count
    assert {p.package_db for p in result.packages} == {package_db}


def test_libuuid_matches_clair_report_shape(shared_data: Path) -> None:
    (pkg,) = RpmScanner().scan(layer_from_dir(shared_data / LIBUUID, [RpmScanner()])).packages
    assert (pkg.name, pkg.version, pkg.kind, pkg.arch, pkg.module) == (
        "libuuid",
        "2.32.1-42.el8_8",
        "binary",
        "x86_64",
        "",
    )
    assert pkg.source is not None
    assert (pkg.source.name, pkg.source.version, pkg.source.kind) == (
        "util-linux",
        "2.32.1-42.el8_8",
        "source",
    )
    assert pkg.source.package_db == "bdb:var/lib/rpm"


def test_built_packages(built_rpmdb: Path) -> None:
    data = (built_rpmdb / "rpmdb.sqlite").read_bytes()
    layer = layer_of({"usr/lib/sysimage/rpm/rpmdb.sqlite": data})
    by_name = {p.name: p for p in RpmScanner().scan(layer).packages}
    module = by_name["tiny-module"]
    assert (module.version, module.module, module.arch) == ("3:1.2-4.el9", "nodejs:18", "noarch")
    assert module.source is not None
    # SOURCERPM file names never carry the epoch, so neither does the source version.
    assert (module.source.name, module.source.version, module.source.module) == (
        "tiny-module",
        "1.2-4.el9",
        "",
    )
    other = by_name["libtiny-other"]
    assert other.source is not None
    assert (other.source.name, other.source.version) == ("tiny-src", "2.0~rc1-1")
    assert other.source is by_name["tiny-src"].source
    assert by_name["tiny-zero"].version == "0.9-7.fc40"
    assert {p.package_db for p in by_name.values()} == {"sqlite:usr/lib/sysimage/rpm"}
    assert all(p.repository_hint.startswith("hash=sha256%3A") for p in by_name.values())


def test_two_backends_in_one_directory(shared_data: Path) -> None:
    sqlite = (shared_data / MARINER / "var/lib/rpm/rpmdb.sqlite").read_bytes()
    bdb = (shared_data / LIBUUID / "var/lib/rpm/Packages").read_bytes()
    layer = layer_of({"var/lib/rpm/rpmdb.sqlite": sqlite, "var/lib/rpm/Packages": bdb})
    dbs = {p.package_db for p in RpmScanner().scan(layer).packages}
    assert dbs == {"sqlite:var/lib/rpm", "bdb:var/lib/rpm"}


def test_non_rpm_files_with_rpm_names_are_skipped() -> None:
    layer = layer_of(
        {
            "srv/mirror/Packages": "Package: foo\nVersion: 1\n",
            "srv/mirror/Packages.db": b"\x00" * 64,
        }
    )
    assert RpmScanner().scan(layer).packages == []


def test_gpg_pubkey_is_not_a_package(shared_data: Path) -> None:
    result = RpmScanner().scan(layer_from_dir(shared_data / AL2023, [RpmScanner()]))
    assert all(p.name != "gpg-pubkey" for p in result.packages)


@pytest.mark.parametrize(
    "files",
    [
        {"var/lib/rpm/rpmdb.sqlite": b"not sqlite at all"},
        {"var/lib/rpm/Packages.db": b"RpmP" + b"\xff" * 60},
    ],
)
def test_broken_database_raises(files: dict[str, bytes]) -> None:
    with pytest.raises(RpmDBError):
        RpmScanner().scan(layer_of(files))


def test_rpm_tool_agrees_on_scanned_names(built_rpmdb: Path) -> None:
    out = subprocess.run(
        ["rpm", "--dbpath", str(built_rpmdb), "-qa", "--qf", "%{name}\\n"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    layer = layer_of({"var/lib/rpm/rpmdb.sqlite": (built_rpmdb / "rpmdb.sqlite").read_bytes()})
    assert sorted(p.name for p in RpmScanner().scan(layer).packages) == sorted(out)
