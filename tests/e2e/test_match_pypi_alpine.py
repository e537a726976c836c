"""End to end: images indexed from their package databases, matched against real feeds.

Feeds come from ../shared/data through the local feed server and the production updaters; the
expected advisories are computed here independently from the same feed documents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from tests.fixtures.combo import Combo, running_combo, vulnerabilities_by_package
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry


def _affects(advisory: dict[str, Any], name: str, version: str) -> bool:
    """The OSV rule, written from the OSV schema: listed versions or an event range."""
    v = Version(version)
    for affected in advisory.get("affected") or []:
        pkg = affected.get("package") or {}
        if pkg.get("ecosystem") != "PyPI" or pkg.get("name", "").lower() != name:
            continue
        if version in (affected.get("versions") or []):
            return True
        for rng in affected.get("ranges") or []:
            if rng.get("type") != "ECOSYSTEM":
                continue
            introduced, fixed, last = Version("0"), None, None
            for event in rng.get("events") or []:
                if "introduced" in event:
                    introduced = Version(event["introduced"])
                if "fixed" in event:
                    fixed = Version(event["fixed"])
                if "last_affected" in event:
                    last = Version(event["last_affected"])
            if v >= introduced and (
                (fixed is not None and v < fixed)
                or (last is not None and v <= last)
                or (fixed is None and last is None)
            ):
                return True
    return False


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Combo]:
    updaters = {
        "sets": ["osv", "alpine"],
        "config": {"osv": {"url": feed_server.url}, "alpine": {"url": feed_server.url + "/"}},
    }
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


async def test_pypi_wheels_against_the_pypa_database(
    combo: Combo,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    pypa_osv: list[dict[str, Any]],
) -> None:
    feed_server.put_pypi_osv(pypa_osv)
    report = await combo.run_updaters()
    assert report.outcomes["osv/pypi"] == "updated", report.errors

    root = shared_data / "layers/pypi-wheels-dist-info"
    manifest = await registry.push_image("pypi-e2e", [build_layer(files_from_dir(root))])
    indexed = await combo.index(manifest)
    found = vulnerabilities_by_package(await combo.vulnerability_report(manifest.hash))

    live = [a for a in pypa_osv if not a.get("withdrawn")]
    for pkg in indexed["packages"].values():
        name, version = pkg["name"], pkg["version"]
        expected = {a["id"] for a in live if _affects(a, name, version)}
        assert found.get((name, version), set()) == expected, name
    assert "PYSEC-2018-28" in found[("requests", "2.19.1")]
    assert len(found[("django", "3.2")]) == 25


async def test_alpine_3_6_against_secdb(
    combo: Combo,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    alpine_secdb: dict[str, bytes],
) -> None:
    feed_server.put_many(alpine_secdb.items())
    report = await combo.run_updaters()
    assert not {k: v for k, v in report.errors.items() if "osv" not in k}, report.errors

    (root,) = (shared_data / "layers").glob("alpine-3.6*")
    manifest = await registry.push_image("alpine36-e2e", [build_layer(files_from_dir(root))])
    indexed = await combo.index(manifest)
    found = vulnerabilities_by_package(await combo.vulnerability_report(manifest.hash))

    # The oracle: secdb v3.6 main, origin (source) package name, fixed version newer than ours.
    import orjson

    from clair_common.versions import compare

    secdb = orjson.loads(alpine_secdb["v3.6/main.json"])
    fixes: dict[str, list[tuple[str, str]]] = {}
    for entry in secdb["packages"]:
        pkg = entry["pkg"]
        for fixed, ids in (pkg.get("secfixes") or {}).items():
            for vuln_id in ids or []:
                fixes.setdefault(pkg["name"], []).append((fixed, vuln_id))
    for pkg in indexed["packages"].values():
        source = pkg.get("source", {}).get("name", pkg["name"])
        expected = {
            vuln_id
            for fixed, vuln_id in fixes.get(source, []) + fixes.get(pkg["name"], [])
            if fixed != "0" and compare("apk", pkg["version"], fixed) < 0
        }
        assert found.get((pkg["name"], pkg["version"]), set()) == expected, pkg["name"]
    names = {n for vulns in found.values() for n in vulns}
    by_pkg = {name for (name, _), vulns in found.items() if vulns}
    assert {"musl", "busybox"} <= by_pkg, by_pkg
    assert any(n.startswith("CVE-") for n in names)
    # libressl's only v3.6 entry (CVE-2017-8301) is fixed in 2.5.3-r1; the image has 2.5.4-r0.
    assert fixes["libressl"] == [("2.5.3-r1", "CVE-2017-8301")]
    assert not any(p.startswith("libressl") for p in by_pkg), by_pkg
