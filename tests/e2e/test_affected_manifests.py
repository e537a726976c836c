"""End to end: `affected_manifest` names exactly the manifests the vulnerability reports name.

Three images are indexed with the Alpine secdb and the PyPA database loaded through the real
updaters: Alpine 3.6; Alpine 3.14 with a layer of Python wheels on top; and that wheels layer
alone. Alpine 3.6 advisories then affect one image, PyPI advisories two, and advisories of other
releases or packages none. The oracle is the three vulnerability reports; the vulnerabilities
are posted as the reports give them and as `update_diff` lists them (the notifier's way).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.combo import Combo, running_combo
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry

AFFECTED_URL = "/indexer/api/v1/internal/affected_manifest/"
AFFECTED_TYPE = "application/vnd.clair.affected_manifests.v1+json"
SEVERITIES = ["Unknown", "Negligible", "Low", "Medium", "High", "Critical"]

Vuln = dict[str, Any]


@pytest.fixture
async def combo(
    pg_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    pypa_osv: list[dict[str, Any]],
    alpine_secdb: dict[str, bytes],
) -> AsyncIterator[Combo]:
    feed_server.put_pypi_osv(pypa_osv)
    feed_server.put_many(alpine_secdb.items())
    updaters = {
        "sets": ["osv", "alpine"],
        "config": {"osv": {"url": feed_server.url}, "alpine": {"url": feed_server.url}},
    }
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        run = await c.run_updaters()
        assert not run.errors, run.errors
        yield c


def layer(shared_data: Path, pattern: str) -> bytes:
    (root,) = (shared_data / "layers").glob(pattern)
    return build_layer(files_from_dir(root))


def vulnerable_ids(report: Mapping[str, Any]) -> set[str]:
    return {v for ids in report["package_vulnerabilities"].values() for v in ids}


def expected(
    reports: Mapping[str, Mapping[str, Any]], posted: Iterable[str]
) -> dict[str, set[str]]:
    """Per manifest, the posted vulnerabilities its report lists; unaffected ones left out."""
    wanted = set(posted)
    out = {digest: vulnerable_ids(report) & wanted for digest, report in reports.items()}
    return {digest: ids for digest, ids in out.items() if ids}


async def affected(combo: Combo, vulns: list[Vuln]) -> dict[str, list[str]]:
    resp = await combo.client.post(AFFECTED_URL, json={"vulnerabilities": vulns}, timeout=120)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == AFFECTED_TYPE
    doc = resp.json()
    assert set(doc["vulnerabilities"]) == {v["id"] for v in vulns}
    manifests: dict[str, list[str]] = doc["vulnerable_manifests"]
    for digest, ids in manifests.items():
        assert len(ids) == len(set(ids)), digest
        ranks = [SEVERITIES.index(doc["vulnerabilities"][i]["normalized_severity"]) for i in ids]
        assert ranks == sorted(ranks, reverse=True), f"{digest}: not most severe first"
    return manifests


def as_sets(manifests: Mapping[str, list[str]]) -> dict[str, set[str]]:
    return {digest: set(ids) for digest, ids in manifests.items()}


async def added_by(combo: Combo, updater: str) -> list[Vuln]:
    """What the updater's newest operation holds: update_diff from the beginning of time."""
    latest = await combo.client.get(
        "/matcher/api/v1/internal/update_operation", params={"latest": "true"}
    )
    (op,) = latest.json()[updater]
    diff = await combo.client.get("/matcher/api/v1/internal/update_diff", params={"cur": op["ref"]})
    assert diff.status_code == 200, diff.text
    added: list[Vuln] = diff.json()["added"] or []
    return added


async def test_affected_manifests_match_the_vulnerability_reports(
    combo: Combo, registry: LocalRegistry, shared_data: Path
) -> None:
    wheels = layer(shared_data, "pypi-wheels-dist-info")
    images = {
        "alpine36": [layer(shared_data, "alpine-3.6*")],
        "alpine314-wheels": [layer(shared_data, "alpine-3.14*"), wheels],
        "wheels": [wheels],
    }
    digests: dict[str, str] = {}
    reports: dict[str, dict[str, Any]] = {}
    for name, layers in images.items():
        manifest = await registry.push_image(f"affected-{name}", layers)
        await combo.index(manifest)
        digests[name] = manifest.hash
        reports[manifest.hash] = await combo.vulnerability_report(manifest.hash)
    alpine36, mixed, only_wheels = (reports[digests[n]] for n in images)
    by_id: dict[str, Vuln] = {
        k: v for r in reports.values() for k, v in r["vulnerabilities"].items()
    }

    # The images are what the test needs: Alpine 3.6 advisories in one, PyPI ones in two.
    alpine_ids = vulnerable_ids(alpine36)
    pypi_ids = vulnerable_ids(only_wheels)
    assert alpine_ids and pypi_ids and not alpine_ids & pypi_ids
    assert vulnerable_ids(mixed) == pypi_ids
    assert {by_id[i]["updater"] for i in alpine_ids} == {"alpine-main-v3.6-updater"}

    # Vulnerabilities affecting nothing indexed: another Alpine release, uninstalled projects.
    installed = {p["name"] for r in reports.values() for p in r["packages"].values()}
    v37 = await added_by(combo, "alpine-main-v3.7-updater")
    pypi_all = await added_by(combo, "osv/pypi")
    elsewhere = [v for v in pypi_all if v["package"]["name"] not in installed]
    assert v37 and elsewhere

    # Unknown severity (lowest) first, so the answer has to be reordered, most severe first.
    severity = {i: SEVERITIES.index(by_id[i]["normalized_severity"]) for i in pypi_ids}
    pypi_pick = sorted(pypi_ids, key=lambda i: (severity[i], i))
    pypi_pick = pypi_pick[:2] + pypi_pick[-3:]
    assert len({severity[i] for i in pypi_pick}) >= 2
    picked = (
        [by_id[i] for i in sorted(alpine_ids)[:3]]
        + [by_id[i] for i in pypi_pick]
        + v37[:3]
        + elsewhere[:3]
    )
    found = await affected(combo, picked)
    want = expected(reports, (v["id"] for v in picked))
    assert as_sets(found) == want
    assert set(found) == {digests["alpine36"], digests["alpine314-wheels"], digests["wheels"]}
    assert len(found[digests["alpine36"]]) == 3 and len(found[digests["wheels"]]) == 5
    assert severity[found[digests["wheels"]][0]] == max(severity[i] for i in pypi_pick)

    nothing = await affected(combo, v37[:5] + elsewhere[:5])
    assert nothing == {}

    # The notifier's way: everything an updater's operation added, per updater.
    seen: set[str] = set()
    for updater in ("alpine-main-v3.6-updater", "alpine-main-v3.7-updater", "osv/pypi"):
        added = {v["id"]: v for v in await added_by(combo, updater)}
        seen |= set(added)
        found = await affected(combo, list(added.values()))
        assert as_sets(found) == expected(reports, added), updater
    # Every advisory of every report came from one of those operations.
    assert set(by_id) <= seen
