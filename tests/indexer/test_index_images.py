"""Real images, built from ../shared/data, pushed to a real registry and indexed over HTTP.

Each image's package set is compared with what the image's own database says: dpkg-query for
dpkg, the `P:`/`V:` records for apk, METADATA for Python.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from clair_common.models import Manifest
from tests.fixtures.images import Symlink, build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry
from tests.indexer.harness import Indexer, running_indexer


@pytest.fixture
async def indexer(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Indexer]:
    async with running_indexer(pg_dsn, tmp_path / "cache") as idx:
        yield idx


def _packages(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["name"], p["version"]) for p in report["packages"].values()}


def _dpkg_query(status: Path) -> set[tuple[str, str]]:
    """The oracle: dpkg's own reading of the status file."""
    with tempfile.TemporaryDirectory() as admin:
        shutil.copy(status, Path(admin) / "status")
        (Path(admin) / "info").mkdir()
        (Path(admin) / "updates").mkdir()
        out = subprocess.run(
            [
                "dpkg-query",
                f"--admindir={admin}",
                "-W",
                "-f",
                "${db:Status-Abbrev}\t${Package}\t${Version}\n",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    rows = set()
    for line in out.splitlines():
        status_abbrev, name, version = line.split("\t")
        if status_abbrev.startswith("ii"):
            rows.add((name, version))
    return rows


def _apk_records(installed: Path) -> set[tuple[str, str]]:
    rows = set()
    name = version = ""
    for line in [*installed.read_text().splitlines(), ""]:
        if line.startswith("P:"):
            name = line[2:]
        elif line.startswith("V:"):
            version = line[2:]
        elif not line and name:
            rows.add((name, version))
            name = version = ""
    return rows


async def _index(
    indexer: Indexer, registry: LocalRegistry, repo: str, layers: list[bytes]
) -> tuple[Manifest, dict[str, Any]]:
    manifest = await registry.push_image(repo, layers)
    resp = await indexer.post(manifest)
    assert resp.status_code == 201, resp.text
    report = resp.json()
    assert report["state"] == "IndexFinished", report["err"]
    assert report["success"] is True
    return manifest, report


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="dpkg-query is the oracle")
async def test_debian_12(indexer: Indexer, registry: LocalRegistry, shared_data: Path) -> None:
    root = shared_data / "layers/debian-12-bookworm-minbase-debootstrap"
    files: dict[str, Any] = dict(files_from_dir(root))
    files["etc/os-release"] = Symlink("../usr/lib/os-release")
    manifest, report = await _index(indexer, registry, "debian", [build_layer(files)])

    expected = _dpkg_query(root / "var/lib/dpkg/status")
    assert len(expected) == 88
    assert _packages(report) == expected
    (dist,) = report["distributions"].values()
    assert dist["did"] == "debian" and dist["version_id"] == "12"
    assert dist["version_code_name"] == "bookworm"
    for pkg_id, envs in report["environments"].items():
        assert envs == [
            {
                "package_db": "var/lib/dpkg/status",
                "introduced_in": manifest.layers[0].hash,
                "distribution_id": dist["id"],
                "repository_ids": None,
            }
        ], pkg_id
    libc = next(p for p in report["packages"].values() if p["name"] == "libc6")
    assert libc["source"]["name"] == "glibc" and libc["source"]["kind"] == "source"
    assert libc["detector"].startswith("urn:claircore:detector:dpkg:")


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="dpkg-query is the oracle")
async def test_ubuntu_20_04(indexer: Indexer, registry: LocalRegistry, shared_data: Path) -> None:
    (root,) = (shared_data / "layers").glob("ubuntu-20.04-*")
    _, report = await _index(
        indexer, registry, "ubuntu", [build_layer(files_from_dir(root), "zstd")]
    )
    expected = _dpkg_query(root / "var/lib/dpkg/status")
    assert len(expected) == 221
    assert _packages(report) == expected
    (dist,) = report["distributions"].values()
    assert (dist["did"], dist["version_id"], dist["pretty_name"]) == (
        "ubuntu",
        "20.04",
        "Ubuntu 20.04",
    )


@pytest.mark.parametrize("version", ["3.6", "3.14", "3.15", "3.16"])
async def test_alpine(
    indexer: Indexer, registry: LocalRegistry, shared_data: Path, version: str
) -> None:
    (root,) = (shared_data / "layers").glob(f"alpine-{version}*")
    _, report = await _index(
        indexer, registry, f"alpine{version}", [build_layer(files_from_dir(root))]
    )
    assert _packages(report) == _apk_records(root / "lib/apk/db/installed")
    (dist,) = report["distributions"].values()
    assert dist["did"] == "alpine"
    assert dist["pretty_name"] == f"Alpine Linux v{version}"
    sources = {p["source"]["name"] for p in report["packages"].values() if "source" in p}
    assert "musl" in sources and "busybox" in sources


async def test_python_wheels(indexer: Indexer, registry: LocalRegistry, shared_data: Path) -> None:
    root = shared_data / "layers/pypi-wheels-dist-info"
    _, report = await _index(indexer, registry, "wheels", [build_layer(files_from_dir(root))])
    parser = email.parser.BytesHeaderParser()
    expected = set()
    for meta in root.rglob("METADATA"):
        headers = parser.parsebytes(meta.read_bytes())
        expected.add((headers["Name"].lower(), headers["Version"]))
    assert len(expected) == 8
    assert _packages(report) == expected
    (repo,) = report["repository"].values()
    assert repo["name"] == "pypi"
    for pkg_id, pkg in report["packages"].items():
        assert pkg["normalized_version"].startswith("pep440:")
        (env,) = report["environments"][pkg_id]
        assert env["repository_ids"] == [repo["id"]]
        assert env["package_db"] == "python:usr/local/lib/python3.8/site-packages"
        assert env["distribution_id"] == ""  # Clair gives language packages no distribution


DISTROLESS_STATUS = {
    "base-files": (
        "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\n"
        "Architecture: amd64\n"
    ),
    "libssl3": (
        "Package: libssl3\nStatus: install ok installed\nVersion: 3.0.11-1~deb12u2\n"
        "Architecture: amd64\nSource: openssl\n"
    ),
}


async def test_distroless_status_d(
    indexer: Indexer, registry: LocalRegistry, shared_data: Path
) -> None:
    files: dict[str, Any] = {
        f"var/lib/dpkg/status.d/{n}": s.encode() for n, s in DISTROLESS_STATUS.items()
    }
    files["var/lib/dpkg/status.d/libssl3.md5sums"] = b"0123 usr/lib/libssl.so.3\n"
    files["etc/os-release"] = (
        shared_data / "layers/debian-12-bookworm-minbase-debootstrap/usr/lib/os-release"
    ).read_bytes()
    _, report = await _index(indexer, registry, "distroless", [build_layer(files)])
    assert _packages(report) == {("base-files", "12.4+deb12u5"), ("libssl3", "3.0.11-1~deb12u2")}
    ssl = next(p for p in report["packages"].values() if p["name"] == "libssl3")
    assert ssl["source"]["name"] == "openssl"
    (env,) = report["environments"][ssl["id"]]
    assert env["package_db"] == "var/lib/dpkg/status.d/libssl3"
