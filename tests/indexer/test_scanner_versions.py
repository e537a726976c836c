"""Scanner names, versions and kinds follow claircore's; a version change re-indexes.

The versions are facts from claircore's source (the newest version of each scanner whose
behaviour ours follows): dpkg/scanner.go, dpkg/distroless_scanner.go,
debian/distributionscanner.go, ubuntu/distributionscanner.go, alpine/packagescanner.go,
alpine/distributionscanner.go, rhel/distributionscanner.go, aws/distributionscanner.go,
oracle/, suse/, photon/ distributionscanner.go, rpm/packagescanner.go, python/packagescanner.go,
rhel/rhcc/scanner.go and rhel/rhcc/detector.go. `gobin` and `rhel-repository-scanner` keep
their own versions: their behaviour differs from claircore's (README, differences).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

import asyncpg

from clair_indexer.scanners import default_scanners
from clair_indexer.scanners.dpkg import DpkgScanner
from clair_indexer.service import WHITEOUT_SCANNER, index_state
from clair_indexer.store import ScannerRow
from tests.fixtures.images import build_layer
from tests.fixtures.registry import LocalRegistry
from tests.indexer.harness import running_indexer

CLAIRCORE = {
    ("dpkg", "6", "package"),
    ("dpkg-distroless", "1", "package"),
    ("debian", "2", "distribution"),
    ("ubuntu", "3", "distribution"),
    ("apk", "v0.0.1", "package"),
    ("alpine", "3", "distribution"),
    ("rhel", "2", "distribution"),
    ("aws", "2", "distribution"),
    ("oracle", "v0.0.1", "distribution"),
    ("suse", "v0.0.1", "distribution"),
    ("photon", "v0.0.1", "distribution"),
    ("rpm", "10", "package"),
    ("python", "5", "package"),
    ("rhel_containerscanner", "1", "package"),
    ("rhel_package_container_detector", "1", "package"),
}
# Ours alone (behaviour differs from claircore's, or no claircore counterpart to follow).
OWN = {("gobin", "1", "package"), ("rhel-repository-scanner", "1", "repository")}


def test_scanner_versions_are_claircores() -> None:
    assert {(s.name, s.version, s.kind) for s in default_scanners()} == CLAIRCORE | OWN
    # claircore's whiteout file scanner, versioned as ours.
    assert (WHITEOUT_SCANNER.name, WHITEOUT_SCANNER.version, WHITEOUT_SCANNER.kind) == (
        "whiteout",
        "1",
        "file",
    )


def test_index_state_is_computed_as_libindex_does() -> None:
    """md5 of "libindex number: 2\\n", then name+version+kind lines sorted by name, one per
    name (libindex keys them by name, so a repeated name counts once, the last one)."""
    rows = [
        ScannerRow("rpm", "10", "package"),
        ScannerRow("dpkg", "5", "package"),
        ScannerRow("alpine", "3", "distribution"),
        ScannerRow("dpkg", "6", "package"),
    ]
    want = hashlib.md5(
        b"libindex number: 2\nalpine3distribution\ndpkg6package\nrpm10package\n",
        usedforsecurity=False,
    ).hexdigest()
    assert index_state(rows) == want


class _OldDpkg(DpkgScanner):
    """The dpkg scanner as stored by a release that numbered it "1"."""

    version: ClassVar[str] = "1"


def _status(name: str, version: str) -> bytes:
    return (
        f"Package: {name}\nStatus: install ok installed\nVersion: {version}\nArchitecture: amd64\n"
    ).encode()


async def test_a_version_change_reindexes_stored_reports(
    pg_dsn: str, tmp_path: Path, registry: LocalRegistry
) -> None:
    """Reports stored under the old dpkg version are re-indexed on the next request: the
    layer is scanned again by the new version only, and the report is rebuilt from it."""
    layer = build_layer({"var/lib/dpkg/status": _status("tar", "1.34+dfsg-1.2")})
    manifest = await registry.push_image("versions", [layer])
    old = [_OldDpkg() if s.name == "dpkg" else s for s in default_scanners()]
    async with running_indexer(pg_dsn, tmp_path / "cache", scanners=old) as before:
        first = await before.post(manifest)
        assert first.status_code == 201, first.text
        old_state = (await before.client.get("/indexer/api/v1/index_state")).json()["state"]
    async with running_indexer(pg_dsn, tmp_path / "cache") as after:
        state = (await after.client.get("/indexer/api/v1/index_state")).json()["state"]
        assert state != old_state
        second = await after.post(manifest)
        assert second.status_code == 201, second.text
        assert second.headers["etag"] == f'"{state}"'
        assert {p["name"] for p in second.json()["packages"].values()} == {"tar"}
    conn = await asyncpg.connect(pg_dsn)
    try:
        scanned = await conn.fetch(
            "SELECT s.version, count(DISTINCT sl.layer_id) AS layers,"
            " count(DISTINCT sm.manifest_id) AS manifests"
            " FROM indexer.scanner s"
            " LEFT JOIN indexer.scanned_layer sl ON sl.scanner_id = s.id"
            " LEFT JOIN indexer.scanned_manifest sm ON sm.scanner_id = s.id"
            " WHERE s.name = 'dpkg' GROUP BY s.version ORDER BY s.version"
        )
    finally:
        await conn.close()
    assert [(r["version"], r["layers"], r["manifests"]) for r in scanned] == [
        ("1", 1, 1),
        ("6", 1, 1),
    ]
