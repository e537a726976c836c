"""rpm database readers against real databases, with real rpm 4.18 as the oracle.

Oracles: `rpm-qa.generated.tsv` (rpm -qa over the kept databases), the upstream `packages.csv`
lists, and databases written here by real tools: `rpmbuild` + `rpm --justdb` (sqlite; the only
backend Debian's rpm writes) and libdb's own `db5.3_load` (Berkeley DB hash files, both byte
orders), each read back by `rpm -qa`.
"""

from __future__ import annotations

import struct
import subprocess
import time
from pathlib import Path

import pytest

from clair_indexer.rpmdb import RpmPackage, detect_kind, header_blobs, read_packages
from tests.fixtures.rpmbuild import (
    SourceRpm,
    install_rpms,
    require_tool,
    session_builder,
)

AL2023 = "layers/amazonlinux-2023-rpm-go-rpmdb"
MARINER = "layers/cbl-mariner-2.0-rpm-go-rpmdb"
SLE15 = "layers/sle15-bci-rpm-go-rpmdb"
LIBUUID = "layers/libuuid-bdb-rpm-go-rpmdb"
SQLITE_DB = "var/lib/rpm/rpmdb.sqlite"
TINY_MODULE = "nodejs:18:8080020230126123456:abcdef12"

Row = tuple[str, str, str, str, str, str, str]
_NONE = "(none)"
_QUERY_FORMAT = (
    "%{name}\\t%{epoch}\\t%{version}\\t%{release}\\t%{arch}\\t%{sourcerpm}\\t%{modularitylabel}\\n"
)


def rows_of(packages: list[RpmPackage]) -> list[Row]:
    """(name, epoch, version, release, arch, sourcerpm, modularitylabel), "" when absent.

    gpg-pubkey headers store a literal "(none)" SOURCERPM; rpm prints it for absent tags too.
    """
    return sorted(
        (
            p.name,
            "" if p.epoch is None else str(p.epoch),
            p.version,
            p.release,
            p.arch,
            _field(p.source_rpm),
            p.modularity_label,
        )
        for p in packages
    )


def _field(value: str) -> str:
    return "" if value == _NONE else value


def tsv_rows(text: str) -> list[Row]:
    rows: list[Row] = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, epoch, version, release, arch, srpm, module = map(_field, line.split("\t"))
            rows.append((name, epoch, version, release, arch, srpm, module))
    return sorted(rows)


def rpm_query(dbpath: Path, backend: str) -> list[Row]:
    require_tool("rpm", "rpm")
    out = subprocess.run(
        [
            *("rpm", "--dbpath", str(dbpath), "--define", f"_db_backend {backend}"),
            *("-qa", "--qf", _QUERY_FORMAT),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return tsv_rows(out)


def timed_read(data: bytes) -> tuple[list[RpmPackage], float]:
    start = time.perf_counter()
    packages = read_packages(data)
    return packages, time.perf_counter() - start


@pytest.mark.parametrize("layer", [AL2023, MARINER])
def test_sqlite_equals_rpm_qa(shared_data: Path, layer: str) -> None:
    data = (shared_data / layer / SQLITE_DB).read_bytes()
    assert detect_kind(data) == "sqlite"
    packages, elapsed = timed_read(data)
    want = tsv_rows((shared_data / layer / "rpm-qa.generated.tsv").read_text())
    assert len(want) > 100
    assert rows_of(packages) == want
    assert elapsed < 2.0


def _csv_rows(path: Path) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for line in path.read_text().splitlines():
        epoch, name, version, release, arch, srpm, *_rest = line.split("¶")
        rows.append((name, epoch, version, release, arch, _field(srpm)))
    return sorted(rows)


@pytest.mark.parametrize(("layer", "db"), [(AL2023, SQLITE_DB), (SLE15, "var/lib/rpm/Packages.db")])
def test_equals_upstream_packages_csv(shared_data: Path, layer: str, db: str) -> None:
    packages = read_packages(shared_data / layer / db)
    got = sorted((r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows_of(packages))
    assert got == _csv_rows(shared_data / layer / "packages.csv")


def test_ndb_details(shared_data: Path) -> None:
    data = (shared_data / SLE15 / "var/lib/rpm/Packages.db").read_bytes()
    assert detect_kind(data) == "ndb"
    packages, elapsed = timed_read(data)
    assert len(packages) == 36
    glibc = next(p for p in packages if p.name == "glibc")
    assert (glibc.evr, glibc.arch) == ("2.31-150300.41.1", "x86_64")
    assert glibc.source_rpm == "glibc-2.31-150300.41.1.src.rpm"
    assert elapsed < 2.0


def test_bdb_libuuid(shared_data: Path) -> None:
    data = (shared_data / LIBUUID / "var/lib/rpm/Packages").read_bytes()
    assert detect_kind(data) == "bdb"
    (pkg,) = read_packages(data)
    assert (pkg.name, pkg.epoch, pkg.version, pkg.release, pkg.arch) == (
        "libuuid",
        None,
        "2.32.1",
        "42.el8_8",
        "x86_64",
    )
    assert pkg.source_rpm == "util-linux-2.32.1-42.el8_8.src.rpm"
    assert rows_of([pkg]) == tsv_rows((shared_data / LIBUUID / "rpm-qa.generated.tsv").read_text())
    # Red Hat release key 2 signed it; the payload digest is SHA-256 (algo 8).
    assert pkg.signing_key_id == "199e2f91fd431d51"
    assert pkg.repository_hint.startswith("hash=sha256%3A198093d0")
    assert pkg.repository_hint.endswith("&key=199e2f91fd431d51")


def test_hint_and_evr_formats(shared_data: Path) -> None:
    packages = read_packages(shared_data / AL2023 / SQLITE_DB)
    gmp = next(p for p in packages if p.name == "gmp")
    assert gmp.evr == "1:6.2.1-2.amzn2023.0.2"
    assert gmp.module_stream == ""
    pubkey = next(p for p in packages if p.name == "gpg-pubkey")
    assert (pubkey.source_rpm, pubkey.arch, pubkey.repository_hint) == ("(none)", "", "")


def write_bdb(blobs: list[bytes], out: Path, byte_order: str, page_size: int) -> None:
    """A Berkeley DB hash `Packages` written by libdb itself (db_load), keyed like rpm's."""
    tool = require_tool("db5.3_load", "db5.3-util")
    lines = ["VERSION=3", "format=bytevalue", "type=hash", "HEADER=END"]
    # Key 0 holds rpm's next-instance counter: a short inline value that is not a package.
    lines += [" " + struct.pack("<I", 0).hex(), " " + struct.pack("<I", len(blobs) + 1).hex()]
    for number, blob in enumerate(blobs, start=1):
        lines += [" " + struct.pack("<I", number).hex(), " " + blob.hex()]
    lines.append("DATA=END")
    out.parent.mkdir(parents=True, exist_ok=True)
    dump = out.with_suffix(".dump")
    dump.write_text("\n".join(lines) + "\n")
    subprocess.run(
        [
            *(tool, "-c", f"db_lorder={byte_order}", "-c", f"db_pagesize={page_size}"),
            *("-f", str(dump), str(out)),
        ],
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize(("byte_order", "page_size"), [("1234", 4096), ("4321", 512)])
def test_bdb_written_by_libdb_equals_rpm_qa(
    shared_data: Path, tmp_path: Path, byte_order: str, page_size: int
) -> None:
    blobs = header_blobs((shared_data / MARINER / SQLITE_DB).read_bytes())
    dbpath = tmp_path / "var/lib/rpm"
    write_bdb(blobs, dbpath / "Packages", byte_order, page_size)
    data = (dbpath / "Packages").read_bytes()
    assert detect_kind(data) == "bdb"
    packages, elapsed = timed_read(data)
    assert len(packages) == len(blobs)
    assert rows_of(packages) == rpm_query(dbpath, "bdb_ro")
    assert elapsed < 2.0


# Tiny noarch rpms: an epoch and a modularity label; a subpackage whose name differs from its
# SOURCERPM; an explicit epoch 0; no epoch at all.
TINY_SOURCES = (
    SourceRpm("tiny-module", "1.2", "4.el9", epoch=3, modularity_label=TINY_MODULE),
    SourceRpm("tiny-src", "2.0~rc1", "1", binaries=("tiny-src", "libtiny-other")),
    SourceRpm("tiny-zero", "0.9", "7.fc40", epoch=0),
)


@pytest.fixture(scope="module")
def built_rpmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sqlite rpmdb with the tiny rpms installed by real rpm (`--justdb`); its directory."""
    rpms = session_builder(tmp_path_factory).build(TINY_SOURCES)
    return install_rpms(rpms, tmp_path_factory.mktemp("rpmbuild") / "root")


def test_built_packages_equal_rpm_qa(built_rpmdb: Path) -> None:
    packages = read_packages(built_rpmdb / "rpmdb.sqlite", "sqlite")
    assert rows_of(packages) == rpm_query(built_rpmdb, "sqlite")
    by_name = {p.name: p for p in packages}
    assert set(by_name) == {"tiny-module", "tiny-src", "libtiny-other", "tiny-zero"}
    assert by_name["tiny-module"].evr == "3:1.2-4.el9"
    assert by_name["tiny-module"].module_stream == "nodejs:18"
    assert by_name["tiny-zero"].epoch == 0
    assert by_name["tiny-zero"].evr == "0.9-7.fc40"
    assert by_name["libtiny-other"].source_rpm == "tiny-src-2.0~rc1-1.src.rpm"
    assert all(p.signing_key_id == "" for p in packages)  # unsigned builds
