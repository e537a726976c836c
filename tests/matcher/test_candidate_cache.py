"""Candidates shared between reports: same answers as without, and never across generations."""

from __future__ import annotations

from dataclasses import replace

import asyncpg

from clair_common.models import Package, Repository
from clair_common.vulnerable import default_matchers
from clair_matcher.candidates import CandidateCache
from clair_matcher.matching import match_report
from clair_matcher.store import MatcherStore
from tests.matcher.test_matching import (
    DEBIAN,
    SOURCE,
    insert_vulnerabilities,
    load,
    mixed_report,
    new_operation,
    v,
)

PYYAML = Package(name="pyyaml", kind="binary")


def test_generations_and_bounds() -> None:
    cache = CandidateCache(max_rows=64)
    cache.use([("vulnerability", "u", "r1")])
    cache.put("a", {1: v("1", "CVE-1", SOURCE, "")})
    cache.put("empty", {})  # an empty answer is kept too
    assert cache.get("a") is not None and cache.get("empty") == {}
    cache.use([("vulnerability", "u", "r1")])  # same generation: kept
    assert len(cache) == 2
    cache.use([("vulnerability", "u", "r2")])  # a new operation: everything goes
    assert len(cache) == 0 and cache.rows == 0
    cache.put("big", {i: v(str(i), "CVE", SOURCE, "") for i in range(5)})  # > 64 // 16
    assert cache.get("big") is None
    for n in range(70):
        cache.put(n, {n: v(str(n), "CVE", SOURCE, "")})
    assert cache.rows == 64 and cache.get(0) is None and cache.get(69) is not None


async def test_cached_candidates_give_the_same_reports(matcher_pool: asyncpg.Pool) -> None:
    pypi = Repository(name="pypi")
    await load(
        matcher_pool,
        {
            "debian/updater": [
                v("1", "CVE-2023-0001", SOURCE, "3.0.11-1~deb12u2", **DEBIAN),
                v("6", "CVE-2023-0006", Package(name="bash", kind="binary"), "5.2.15-3", **DEBIAN),
            ],
            "osv/pypi": [
                v(
                    "40",
                    "GHSA-0040",
                    Package(name="pyyaml", kind="binary"),
                    "fixed=5.4",
                    repository=pypi,
                ),
            ],
        },
    )
    matchers = default_matchers()
    cache = CandidateCache()
    report = mixed_report()
    # Another image with the same packages at other versions: same keys, other answers.
    other = replace(report, manifest_hash="sha256:" + "c" * 64)
    other.packages = {
        pid: replace(p, version="5.4" if p.name == "pyyaml" else p.version)
        for pid, p in report.packages.items()
    }
    for image in (report, other, report):
        cached = await match_report(MatcherStore(matcher_pool), image, matchers, cache)
        fresh = await match_report(MatcherStore(matcher_pool), image, matchers)
        assert cached.to_json() == fresh.to_json()
    assert len(cache) > 0
    assert (
        "40"
        in (await match_report(MatcherStore(matcher_pool), report, matchers, cache)).vulnerabilities
    )
    assert (
        "40"
        not in (
            await match_report(MatcherStore(matcher_pool), other, matchers, cache)
        ).vulnerabilities
    )


async def test_a_new_operation_is_seen_at_once(matcher_pool: asyncpg.Pool) -> None:
    await load(matcher_pool, {"debian/updater": [v("1", "CVE-2023-0001", SOURCE, "", **DEBIAN)]})
    matchers = default_matchers(["debian-matcher"])
    cache = CandidateCache()
    report = mixed_report()
    before = await match_report(MatcherStore(matcher_pool), report, matchers, cache)
    assert set(before.vulnerabilities) == {"1"}
    # The updater's next run adds a vulnerability of the same package: the key is cached, but
    # under the previous generation.
    async with matcher_pool.acquire() as conn, conn.transaction():
        uo = await new_operation(conn, "debian/updater")
        again = v("11", "CVE-2023-0001", SOURCE, "", **DEBIAN)
        await insert_vulnerabilities(
            conn, uo, [again, v("12", "CVE-2023-0002", SOURCE, "", **DEBIAN)]
        )
    after = await match_report(MatcherStore(matcher_pool), report, matchers, cache)
    assert set(after.vulnerabilities) == {"11", "12"}
