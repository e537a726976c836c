"""Snapshot ingestion, deduplication, atomicity and retention GC on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from clair_common.models import Distribution, Package, Repository, Vulnerability
from clair_matcher.store import MatcherStore
from clair_matcher.store._rows import VULN_COLUMNS, vuln_from_row
from tests.fixtures.feeds import matcher_pool  # noqa: F401

UPDATER = "test-updater"
DIST = Distribution(
    did="alpine", name="Alpine Linux", version_id="3.16", pretty_name="Alpine Linux v3.16"
)


def make(i: int, *, fixed: str = "1.0-r0", package: str | None = None) -> Vulnerability:
    return Vulnerability(
        updater=UPDATER,
        name=f"CVE-2024-{i:05d}",
        description="desc",
        issued="2024-02-03T04:05:06Z" if i % 2 else "0001-01-01T00:00:00Z",
        links=f"https://example.invalid/{i}",
        severity="CVSS:3.1/AV:N",
        normalized_severity="High",
        package=Package(name=package if package is not None else f"pkg{i % 97}", kind="source"),
        distribution=DIST,
        repository=Repository(name="pypi", uri="https://pypi.org/") if i % 3 == 0 else None,
        fixed_in_version=fixed,
        range={"[": "1", ")": "2"} if i % 5 == 0 else None,
    )


async def counts(pool: asyncpg.Pool) -> tuple[int, int, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM update_operation) AS uo, (SELECT count(*) FROM vuln) AS v,"
        " (SELECT count(*) FROM uo_vuln) AS links"
    )
    return row["uo"], row["v"], row["links"]


async def test_snapshot_dedupes_by_content_and_relinks(matcher_pool: asyncpg.Pool) -> None:  # noqa: F811
    vulns = [make(i) for i in range(25_000)]
    first = await MatcherStore(matcher_pool).update_vulnerabilities(
        UPDATER, '"etag-1"', vulns, batch_size=4_000
    )
    assert (first.records, first.inserted, first.linked) == (25_000, 25_000, 25_000)
    assert await counts(matcher_pool) == (1, 25_000, 25_000)
    assert await MatcherStore(matcher_pool).latest_fingerprint(UPDATER) == '"etag-1"'

    # Same content plus 3 new records and one changed fix: only 4 rows are new.
    changed = [*vulns[:-1], make(24_999, fixed="2.0-r0"), make(90_001), make(90_002), make(90_003)]
    second = await MatcherStore(matcher_pool).update_vulnerabilities(
        UPDATER, '"etag-2"', iter(changed)
    )
    assert (second.inserted, second.linked) == (4, 25_003)
    assert await counts(matcher_pool) == (2, 25_004, 50_003)
    store = MatcherStore(matcher_pool)
    latest = await store.update_operations("vulnerability", latest=True)
    assert [uo.ref for uo in latest[UPDATER]] == [second.ref]
    diff = await store.update_diff(uuid.UUID(first.ref), uuid.UUID(second.ref))
    assert diff is not None
    assert sorted(v.name for v in diff.added) == [
        "CVE-2024-24999",
        "CVE-2024-90001",
        "CVE-2024-90002",
        "CVE-2024-90003",
    ]
    assert [v.fixed_in_version for v in diff.removed] == ["1.0-r0"]


async def test_duplicates_within_a_run_and_rows_without_package(matcher_pool: asyncpg.Pool) -> None:  # noqa: F811
    vulns = [make(1), make(1), make(2, package=""), Vulnerability(name="no-package"), make(3)]
    result = await MatcherStore(matcher_pool).update_vulnerabilities(
        UPDATER, "", vulns, batch_size=1
    )
    assert (result.records, result.inserted, result.linked) == (3, 2, 2)
    assert await counts(matcher_pool) == (1, 2, 2)


async def test_round_trip_through_the_read_side(matcher_pool: asyncpg.Pool) -> None:  # noqa: F811
    originals = [make(i) for i in range(30)]
    await MatcherStore(matcher_pool).update_vulnerabilities(UPDATER, "", originals)
    rows = await matcher_pool.fetch(f"SELECT {VULN_COLUMNS} FROM vuln v ORDER BY v.name")
    for original, row in zip(originals, rows, strict=True):
        back = vuln_from_row(row)
        original.id = back.id
        assert back.to_json() == original.to_json()


async def test_failure_mid_stream_commits_nothing(matcher_pool: asyncpg.Pool) -> None:  # noqa: F811
    await MatcherStore(matcher_pool).update_vulnerabilities(
        UPDATER, '"good"', [make(i) for i in range(10)]
    )

    def broken() -> Iterator[Vulnerability]:
        for i in range(15_000):
            yield make(100_000 + i)
        raise ValueError("feed broke at record 15000")

    with pytest.raises(ValueError, match="record 15000"):
        await MatcherStore(matcher_pool).update_vulnerabilities(
            UPDATER, '"bad"', broken(), batch_size=5_000
        )
    assert await counts(matcher_pool) == (1, 10, 10)
    assert await MatcherStore(matcher_pool).latest_fingerprint(UPDATER) == '"good"'


async def test_gc_keeps_retention_and_throttles(matcher_pool: asyncpg.Pool) -> None:  # noqa: F811
    for run in range(6):
        # Each run keeps record 0 and adds one record of its own.
        await MatcherStore(matcher_pool).update_vulnerabilities(
            UPDATER, f"fp{run}", [make(0), make(1000 + run)]
        )
    await MatcherStore(matcher_pool).update_vulnerabilities("other", "x", [make(0)])
    assert await MatcherStore(matcher_pool).collect_garbage(0) == 0  # retention 0: GC off
    assert (await counts(matcher_pool))[0] == 7

    assert await MatcherStore(matcher_pool).collect_garbage(2, throttle=3) == 1
    assert await MatcherStore(matcher_pool).collect_garbage(2, throttle=3) == 0
    uo, v, links = await counts(matcher_pool)
    assert uo == 3  # 2 of UPDATER, 1 of "other"
    fps = await matcher_pool.fetch(
        "SELECT fingerprint FROM update_operation WHERE updater = $1 ORDER BY id", UPDATER
    )
    assert [r["fingerprint"] for r in fps] == ["fp4", "fp5"]
    # Unlinked rows are gone: make(0) (per updater) + the records of runs 4 and 5.
    assert v == 4
    assert links == 5
    assert await MatcherStore(matcher_pool).latest_fingerprint(UPDATER) == "fp5"


async def test_status_rows(matcher_pool: asyncpg.Pool) -> None:  # noqa: F811
    await MatcherStore(matcher_pool).record_status(UPDATER, fingerprint="a", error=None)
    await MatcherStore(matcher_pool).record_status(UPDATER, fingerprint="b", error="boom at line 3")
    row = await matcher_pool.fetchrow(
        "SELECT * FROM updater_status WHERE updater_name = $1", UPDATER
    )
    assert row["last_run_succeeded"] is False
    assert row["last_error"] == "boom at line 3"
    assert row["last_attempt_fingerprint"] == "b"
    assert row["last_success"] is not None
