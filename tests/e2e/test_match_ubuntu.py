"""End to end: an Ubuntu 18.04 (bionic) image matched against Canonical's bionic CVE OVAL.

The image carries claircore's bionic os-release and lsb-release and a dpkg status written
here, holding the binaries the OVAL excerpt names (through its constant variables) at versions
before, at and after their fixes, plus one package it does not name. Launchpad's series list
and the bzip2-compressed document are served the way Launchpad and Canonical serve them; the
expected advisories are computed here from the document with `dpkg --compare-versions`.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.combo import Combo, running_combo, vulnerabilities_by_package
from tests.fixtures.images import Entry, build_layer
from tests.fixtures.registry import LocalRegistry
from tests.matcher.test_updaters_ubuntu import (
    BIONIC_OS_RELEASE,
    CanonicalServer,
    expected_records,
    serve_ubuntu,
    ubuntu_config,
)

BIONIC_LSB_RELEASE = "layers/claircore/ubuntu/testdata/dist/18.04/etc/lsb-release"
# (binary, source, version): potrace is fixed in 1.14-2, tor in 0.2.8.9-1ubuntu1.
PACKAGES = [
    ("libpotrace0", "potrace", "1.14-1"),  # before the fix
    ("potrace", "potrace", "1.14-2"),  # at the fix
    ("tor", "tor", "0.3.2.10-1"),  # after the fix
    ("tor-geoipdb", "tor", "0.2.8.8-1"),  # before, in another binary of the same source
    ("base-files", "base-files", "10.1ubuntu2.11"),  # named by no definition
]


@pytest.fixture
async def canonical() -> AsyncIterator[CanonicalServer]:
    server = CanonicalServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, canonical: CanonicalServer) -> AsyncIterator[Combo]:
    updaters = {"sets": ["ubuntu"], "config": {"ubuntu": ubuntu_config(canonical)}}
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


@functools.cache
def dpkg_less(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0


def status_file() -> bytes:
    stanzas = []
    for name, source, version in PACKAGES:
        lines = [f"Package: {name}", "Status: install ok installed", "Architecture: amd64"]
        if source != name:
            lines.append(f"Source: {source}")
        lines += [f"Version: {version}", f"Description: {name} for the OVAL test", ""]
        stanzas.append("\n".join(lines) + "\n")
    return "".join(stanzas).encode()


def expected_advisories(document: bytes) -> dict[tuple[str, str], set[str]]:
    """The ubuntu matcher's rule: no fix or `0` is vulnerable, else dpkg `installed < fixed`."""
    out: dict[tuple[str, str], set[str]] = {}
    for title, binary, fixed in expected_records(document):
        for name, _, version in PACKAGES:
            if name != binary:
                continue
            if fixed in ("", "0", "0:0") or dpkg_less(version, fixed):
                out.setdefault((name, version), set()).add(title)
    return out


async def test_bionic_image_against_ubuntu_oval(
    combo: Combo, canonical: CanonicalServer, registry: LocalRegistry, shared_data: Path
) -> None:
    document = serve_ubuntu(canonical, shared_data)
    run = await combo.run_updaters()
    assert run.outcomes == {"ubuntu/updater/bionic": "updated"}, run.errors

    files: dict[str, Entry] = {
        "etc/os-release": (shared_data / BIONIC_OS_RELEASE).read_bytes(),
        "etc/lsb-release": (shared_data / BIONIC_LSB_RELEASE).read_bytes(),
        "var/lib/dpkg/status": status_file(),
    }
    manifest = await registry.push_image("ubuntu-bionic-e2e", [build_layer(files)])
    indexed = await combo.index(manifest)
    (dist,) = indexed["distributions"].values()
    assert {k: v for k, v in dist.items() if k != "id"} == {
        "did": "ubuntu",
        "name": "Ubuntu",
        "version": "18.04 (Bionic)",
        "version_code_name": "bionic",
        "version_id": "18.04",
        "arch": "",
        "cpe": "",
        "pretty_name": "Ubuntu 18.04",
    }
    assert len(indexed["packages"]) == len(PACKAGES)

    report = await combo.vulnerability_report(manifest.hash)
    want = expected_advisories(document)
    assert vulnerabilities_by_package(report) == want
    # The oracle, spelled out: only the binaries before their fix.
    assert want == {
        ("libpotrace0", "1.14-1"): {"CVE-2016-8703 on Ubuntu 18.04 LTS (bionic) - medium."},
        ("tor-geoipdb", "0.2.8.8-1"): {"CVE-2016-8860 on Ubuntu 18.04 LTS (bionic) - medium."},
    }
    for vuln in report["vulnerabilities"].values():
        assert vuln["updater"] == "ubuntu/updater/bionic"
        assert (vuln["severity"], vuln["normalized_severity"]) == ("", "Medium")
        assert vuln["distribution"]["version_id"] == "18.04"
