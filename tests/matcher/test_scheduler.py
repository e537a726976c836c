"""Whole update runs: real feeds over HTTP, real PostgreSQL, two replicas, failures, GC."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from clair_common.db.locks import AdvisoryLocks
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.store import MatcherStore
from tests.fixtures.feeds import (  # noqa: F401
    FeedServer,
    alpine_secdb,
    feed_server,
    matcher_pool,
    osv_zip,
    pypa_osv,
)

ALPINE_SUBSET = ("v3.5/main.json", "v3.6/main.json", "v3.6/community.json")


@pytest.fixture
def serve(
    feed_server: FeedServer,  # noqa: F811
    alpine_secdb: dict[str, bytes],  # noqa: F811
    pypa_osv: list[dict[str, object]],  # noqa: F811
) -> FeedServer:
    feed_server.put("last-update", alpine_secdb["last-update"])
    for path in ALPINE_SUBSET:
        feed_server.put(path, alpine_secdb[path])
    # Discovery walks v3.3, v3.4, ... contiguously: the directories must exist.
    feed_server.put("v3.3/README", b"no databases here\n")
    feed_server.put("v3.4/README", b"no databases here\n")
    feed_server.put("ecosystems.txt", b"PyPI\nDebian:12\nnpm\n")
    feed_server.put("PyPI/all.zip", osv_zip(pypa_osv))
    return feed_server


@pytest.fixture
async def make_scheduler(
    matcher_pool: asyncpg.Pool,  # noqa: F811
    pg_dsn: str,
    serve: FeedServer,
) -> AsyncIterator[Callable[..., UpdateScheduler]]:
    made: list[tuple[UpdateScheduler, AdvisoryLocks]] = []

    def build(*, disabled: bool = False, retention: int = 10) -> UpdateScheduler:
        locks = AdvisoryLocks(pg_dsn)  # one per scheduler: each stands for a replica
        scheduler = UpdateScheduler(
            MatcherStore(matcher_pool),
            locks,
            sets=["alpine", "osv"],
            config={"alpine": {"url": serve.url}, "osv": {"url": serve.url}},
            period=timedelta(hours=6),
            retention=retention,
            disabled=disabled,
        )
        made.append((scheduler, locks))
        return scheduler

    yield build
    for scheduler, locks in made:
        await scheduler.close()
        await locks.close()


async def operations(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT updater, count(*) AS n FROM update_operation GROUP BY updater")
    return {r["updater"]: r["n"] for r in rows}


ALL = {
    "alpine-main-v3.5-updater",
    "alpine-main-v3.6-updater",
    "alpine-community-v3.6-updater",
    "osv/pypi",
}


async def test_run_unchanged_run_then_one_changed_feed(
    make_scheduler: Callable[..., UpdateScheduler],
    matcher_pool: asyncpg.Pool,  # noqa: F811
    serve: FeedServer,
) -> None:
    scheduler = make_scheduler()
    first = await scheduler.run_once()
    assert first.outcomes == dict.fromkeys(ALL, "updated")
    assert first.gc_ran
    assert await operations(matcher_pool) == dict.fromkeys(ALL, 1)
    vulns_before = await matcher_pool.fetchval("SELECT count(*) FROM vuln")
    hit = await matcher_pool.fetchval(
        "SELECT count(*) FROM vuln WHERE name = 'PYSEC-2018-28' AND package_name = 'requests'"
    )
    assert hit == 1

    second = await scheduler.run_once()
    assert second.outcomes == dict.fromkeys(ALL, "unchanged")
    assert await operations(matcher_pool) == dict.fromkeys(ALL, 1)
    assert serve.count("PyPI/all.zip") == 2  # asked again, answered 304

    doc = orjson.loads(serve.files["v3.6/main.json"])
    doc["packages"].append(
        {"pkg": {"name": "musl", "secfixes": {"1.1.16-r15": ["CVE-2099-0001", "CVE-2099-0002"]}}}
    )
    serve.put("v3.6/main.json", orjson.dumps(doc))
    third = await scheduler.run_once()
    assert third.outcomes["alpine-main-v3.6-updater"] == "updated"
    assert {k for k, v in third.outcomes.items() if v == "updated"} == {"alpine-main-v3.6-updater"}
    counts = await operations(matcher_pool)
    assert counts == dict.fromkeys(ALL, 1) | {"alpine-main-v3.6-updater": 2}
    assert await matcher_pool.fetchval("SELECT count(*) FROM vuln") == vulns_before + 2
    status = await matcher_pool.fetchrow(
        "SELECT * FROM updater_status WHERE updater_name = 'alpine-main-v3.6-updater'"
    )
    assert status["last_run_succeeded"] and status["last_attempt_fingerprint"] == serve.etag(
        "v3.6/main.json"
    )


async def test_broken_feeds_fail_alone_and_keep_previous_data(
    make_scheduler: Callable[..., UpdateScheduler],
    matcher_pool: asyncpg.Pool,  # noqa: F811
    serve: FeedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = make_scheduler()
    await scheduler.run_once()
    latest_before = dict(
        await matcher_pool.fetch("SELECT updater, uo_id FROM latest_update_operation")
    )
    main36 = serve.files["v3.6/main.json"]
    serve.put("v3.6/main.json", main36[: len(main36) // 2])
    pypi = serve.files["PyPI/all.zip"]
    serve.put("PyPI/all.zip", pypi[: len(pypi) - 5000])
    serve.put("v3.5/main.json", serve.files["v3.5/main.json"] + b" ")  # changed, still valid

    with caplog.at_level(logging.ERROR, logger="clair.matcher.updates"):
        report = await scheduler.run_once()
    assert report.outcomes == {
        "alpine-main-v3.5-updater": "updated",
        "alpine-main-v3.6-updater": "failed",
        "alpine-community-v3.6-updater": "unchanged",
        "osv/pypi": "failed",
    }
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    alpine_line = next(m for m in lines if "alpine-main-v3.6-updater" in m)
    assert alpine_line.startswith("updater alpine-main-v3.6-updater failed: ")
    assert "v3.6/main.json" in alpine_line and "line " in alpine_line
    assert any(m.startswith("updater osv/pypi failed: ") and "corrupt zip" in m for m in lines)

    latest_after = dict(
        await matcher_pool.fetch("SELECT updater, uo_id FROM latest_update_operation")
    )
    for name in ("alpine-main-v3.6-updater", "osv/pypi", "alpine-community-v3.6-updater"):
        assert latest_after[name] == latest_before[name]
    assert latest_after["alpine-main-v3.5-updater"] != latest_before["alpine-main-v3.5-updater"]
    status = await matcher_pool.fetchrow(
        "SELECT * FROM updater_status WHERE updater_name = 'osv/pypi'"
    )
    assert not status["last_run_succeeded"] and "corrupt zip" in status["last_error"]
    assert status["last_success"] is not None


async def test_two_replicas_run_each_updater_once(
    make_scheduler: Callable[..., UpdateScheduler],
    matcher_pool: asyncpg.Pool,  # noqa: F811
) -> None:
    one, two = make_scheduler(), make_scheduler()
    first, second = await asyncio.gather(one.run_once(), two.run_once())
    assert await operations(matcher_pool) == dict.fromkeys(ALL, 1)
    for name in ALL:
        assert sorted([first.outcomes[name], second.outcomes[name]]) in (
            ["skipped", "updated"],
            ["unchanged", "updated"],
        )


async def test_disabled_updaters_do_nothing(
    make_scheduler: Callable[..., UpdateScheduler],
    matcher_pool: asyncpg.Pool,  # noqa: F811
    serve: FeedServer,
) -> None:
    scheduler = make_scheduler(disabled=True)
    report = await scheduler.run_once()
    scheduler.start()  # a no-op as well
    assert report.outcomes == {} and not report.gc_ran
    assert sum(serve.requests.values()) == 0
    assert await operations(matcher_pool) == {}


async def test_gc_after_each_run_keeps_retention(
    make_scheduler: Callable[..., UpdateScheduler],
    matcher_pool: asyncpg.Pool,  # noqa: F811
    serve: FeedServer,
) -> None:
    for path in ("v3.5/main.json", "v3.6/community.json", "PyPI/all.zip"):
        serve.delete(path)
    serve.put("v3.5/README", b"keeps the directory\n")
    serve.put("ecosystems.txt", b"npm\n")
    scheduler = make_scheduler(retention=2)
    original = serve.files["v3.6/main.json"]
    for run in range(4):
        serve.put("v3.6/main.json", original + b" " * run)
        report = await scheduler.run_once()
        assert report.outcomes["alpine-main-v3.6-updater"] == "updated"
    assert await operations(matcher_pool) == {"alpine-main-v3.6-updater": 2}
    links = await matcher_pool.fetchval("SELECT count(*) FROM uo_vuln")
    assert links == 2 * await matcher_pool.fetchval("SELECT count(*) FROM vuln")


async def test_background_loop_runs_at_start(
    make_scheduler: Callable[..., UpdateScheduler],
    matcher_pool: asyncpg.Pool,  # noqa: F811
    serve: FeedServer,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    for _ in range(300):
        if len(await operations(matcher_pool)) == len(ALL):
            break
        await asyncio.sleep(0.1)
    await scheduler.close()
    assert await operations(matcher_pool) == dict.fromkeys(ALL, 1)


def test_shared_data_present(shared_data: Path) -> None:
    assert (shared_data / "feeds/alpine-secdb/v3.6/main.yaml").is_file()
