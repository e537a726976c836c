"""dpkg and distroless scanners against real status files, with dpkg-query as the oracle."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from clair_indexer.scanners import DistrolessScanner, DpkgScanner
from clair_indexer.scanners.dpkg import parse_status
from tests.indexer.test_scanners_base import layer_from_dir, layer_of

DEBIAN_12 = "layers/debian-12-bookworm-minbase-debootstrap"
UBUNTU_2004 = "layers/ubuntu-20.04-base-jason416"
STATUS = "var/lib/dpkg/status"
CLAIRCORE_STATUS = "layers/claircore/dpkg/testdata"

_QUERY_FORMAT = (
    "${db:Status-Eflag} ${db:Status-Status}\\t${Package}\\t${Version}\\t${Architecture}"
    "\\t${source:Package}\\t${source:Version}\\n"
)


def dpkg_query(status: Path, tmp_path: Path) -> set[tuple[str, str, str, str, str]]:
    """(name, version, arch, source name, source version) of every installed package."""
    if shutil.which("dpkg-query") is None:
        pytest.fail("dpkg-query is needed as the oracle (apt-get install dpkg)")
    admin = tmp_path / "admindir"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    shutil.copyfile(status, admin / "status")
    out = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-W", "-f", _QUERY_FORMAT],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = set()
    for line in out.splitlines():
        state, name, version, arch, src, src_version = line.split("\t")
        if state == "ok installed":
            rows.add((name, version, arch, src, src_version))
    return rows


def scanned(status: Path) -> set[tuple[str, str, str, str, str]]:
    rows = set()
    for pkg in parse_status(status.read_bytes(), STATUS):
        assert pkg.source is not None
        rows.add((pkg.name, pkg.version, pkg.arch, pkg.source.name, pkg.source.version))
    return rows


def test_debian_12_minbase_has_88_packages(shared_data: Path) -> None:
    layer = layer_from_dir(shared_data / DEBIAN_12, [DpkgScanner()])
    pkgs = DpkgScanner().scan(layer).packages
    assert len(pkgs) == 88
    assert [(p.name, p.version) for p in pkgs] == sorted((p.name, p.version) for p in pkgs)
    assert {p.package_db for p in pkgs} == {STATUS}
    assert all(p.kind == "binary" and p.source and p.source.kind == "source" for p in pkgs)


def test_ubuntu_2004_has_221_packages(shared_data: Path) -> None:
    layer = layer_from_dir(shared_data / UBUNTU_2004, [DpkgScanner()])
    assert len(DpkgScanner().scan(layer).packages) == 221


@pytest.mark.parametrize(
    "status",
    [
        f"{DEBIAN_12}/{STATUS}",
        f"{UBUNTU_2004}/{STATUS}",
        f"{CLAIRCORE_STATUS}/debian-only.status",
        f"{CLAIRCORE_STATUS}/postgresql.status",
        f"{CLAIRCORE_STATUS}/texlive.status",
    ],
)
def test_matches_dpkg_query(shared_data: Path, tmp_path: Path, status: str) -> None:
    want = dpkg_query(shared_data / status, tmp_path)
    assert want, "oracle found nothing"
    assert scanned(shared_data / status) == want


def test_source_linkage(shared_data: Path) -> None:
    pkgs = {
        p.name: p for p in parse_status((shared_data / DEBIAN_12 / STATUS).read_bytes(), STATUS)
    }
    libc6 = pkgs["libc6"]
    assert libc6.source is not None
    assert (libc6.source.name, libc6.source.version) == ("glibc", libc6.version)
    assert libc6.arch == "amd64"
    # One source object per source name in a database.
    assert pkgs["libc-bin"].source is libc6.source
    # binNMU: "Source: bash (5.2.15-2)" gives the source its own version.
    bash = pkgs["bash"]
    assert bash.source is not None
    assert (bash.version, bash.source.name, bash.source.version) == (
        "5.2.15-2+b13",
        "bash",
        "5.2.15-2",
    )
    # No Source field: the source is named like the binary, with its version.
    apt = pkgs["apt"]
    assert apt.source is not None
    assert (apt.source.name, apt.source.version) == ("apt", apt.version)


def test_source_with_version_and_status_rules() -> None:
    status = b"""Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.31.1-0.4ubuntu3.3)
Version: 1:2.31.1-0.4ubuntu3.3
Description: basic utilities
 with a continuation line: Status: purge ok not-installed

Package: removed
Status: deinstall ok config-files
Version: 1.0

Package: held
Status: hold ok installed
Version: 2.0
Architecture: all

Package: broken
Status: install reinstreq half-installed
Version: 3.0


Package: dup
Status: install ok installed
Version: 1

Package: dup
Status: install ok installed
Version: 2
"""
    pkgs = {p.name: p for p in parse_status(status, STATUS)}
    assert sorted(pkgs) == ["bsdutils", "dup", "held"]
    src = pkgs["bsdutils"].source
    assert src is not None
    assert (src.name, src.version) == ("util-linux", "2.31.1-0.4ubuntu3.3")
    assert pkgs["bsdutils"].version == "1:2.31.1-0.4ubuntu3.3"
    assert pkgs["dup"].version == "2"  # Clair keys binaries by name: the last one wins


def test_wants_status_files_only() -> None:
    scanner = DpkgScanner()
    assert scanner.wants("var/lib/dpkg/status")
    assert scanner.wants("chroot/var/lib/dpkg/status")
    assert not scanner.wants("var/lib/dpkg/status-old")
    assert not scanner.wants("var/lib/mydpkg/status")
    assert not scanner.wants("var/lib/dpkg/status.d/base")


def test_status_under_another_root() -> None:
    layer = layer_of({"opt/root/var/lib/dpkg/status": "Package: a\nStatus: install ok installed\n"})
    (pkg,) = DpkgScanner().scan(layer).packages
    assert (pkg.name, pkg.package_db) == ("a", "opt/root/var/lib/dpkg/status")


def test_distroless_status_d() -> None:
    layer = layer_of(
        {
            "var/lib/dpkg/status.d/base": (
                "Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n"
            ),
            "var/lib/dpkg/status.d/libssl3": (
                "Package: libssl3\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\n"
                "Source: openssl\n"
            ),
            "var/lib/dpkg/status.d/libssl3.md5sums": "d41d8cd98f00b204e9800998ecf8427e  usr/x\n",
        }
    )
    scanner = DistrolessScanner()
    assert not scanner.wants("var/lib/dpkg/status.d/libssl3.md5sums")
    assert scanner.wants("var/lib/dpkg/status.d/libssl3")
    assert not scanner.wants("var/lib/dpkg/status.d/sub/x")
    pkgs = {p.name: p for p in scanner.scan(layer).packages}
    assert sorted(pkgs) == ["base-files", "libssl3"]
    assert pkgs["base-files"].source is None
    assert pkgs["base-files"].package_db == "var/lib/dpkg/status.d/base"
    src = pkgs["libssl3"].source
    assert src is not None
    assert (src.name, src.version, src.kind) == ("openssl", "3.0.11-1~deb12u2", "source")
