"""A stalled feed fails alone: each updater's run has a total deadline
(`matcher.updater_timeout`) and a minimum download rate (`matcher.updater_min_rate` per
`matcher.updater_rate_window`), and rounds of the background loop do not wait for a straggler,
so the other updaters keep running. Real feeds over HTTP, real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from clair_common.db.locks import AdvisoryLocks
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.store import MatcherStore
from tests.fixtures.feeds import FeedServer

FEEDS = ("v3.5/main.json", "v3.6/main.json", "v3.6/community.json")
STALLED = "alpine-community-v3.6-updater"
OTHERS = {"alpine-main-v3.5-updater", "alpine-main-v3.6-updater"}


@pytest.fixture
def serve(feed_server: FeedServer, alpine_secdb: dict[str, bytes]) -> FeedServer:
    feed_server.put("last-update", alpine_secdb["last-update"])
    for path in FEEDS:
        feed_server.put(path, alpine_secdb[path])
    feed_server.put("v3.3/README", b"no databases here\n")
    feed_server.put("v3.4/README", b"no databases here\n")
    return feed_server


@pytest.fixture
async def make_scheduler(
    matcher_pool: asyncpg.Pool, pg_dsn: str, serve: FeedServer
) -> AsyncIterator[Callable[..., UpdateScheduler]]:
    made: list[tuple[UpdateScheduler, AdvisoryLocks]] = []

    def build(**options: Any) -> UpdateScheduler:
        locks = AdvisoryLocks(pg_dsn)
        options.setdefault("period", timedelta(hours=6))
        scheduler = UpdateScheduler(
            MatcherStore(matcher_pool),
            locks,
            sets=["alpine"],
            config={"alpine": {"url": serve.url}},
            retention=10,
            **options,
        )
        made.append((scheduler, locks))
        return scheduler

    yield build
    for scheduler, locks in made:
        await scheduler.close()
        await locks.close()


async def status(pool: asyncpg.Pool, updater: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM updater_status WHERE updater_name = $1", updater)
    assert row is not None
    return row


async def test_trickling_feed_fails_the_minimum_rate(
    make_scheduler: Callable[..., UpdateScheduler], matcher_pool: asyncpg.Pool, serve: FeedServer
) -> None:
    serve.drips["v3.6/community.json"] = (1.0, 1)  # a byte a second
    scheduler = make_scheduler(min_rate=100, rate_window=timedelta(seconds=1))
    report = await asyncio.wait_for(scheduler.run_once(), 30)
    assert report.outcomes == {STALLED: "failed"} | dict.fromkeys(OTHERS, "updated")
    assert "slower than 100 bytes/s" in report.errors[STALLED]
    row = await status(matcher_pool, STALLED)
    assert not row["last_run_succeeded"]
    assert "slower than" in row["last_error"]


async def test_endless_feed_hits_the_deadline(
    make_scheduler: Callable[..., UpdateScheduler], matcher_pool: asyncpg.Pool, serve: FeedServer
) -> None:
    # Fast enough for any rate floor, but the download would take a minute.
    serve.drips["v3.6/community.json"] = (
        0.05,
        max(1, len(serve.files["v3.6/community.json"]) // 1200),
    )
    scheduler = make_scheduler(updater_timeout=timedelta(seconds=2))
    report = await asyncio.wait_for(scheduler.run_once(), 30)
    assert report.outcomes == {STALLED: "failed"} | dict.fromkeys(OTHERS, "updated")
    assert "timed out after 2s" in report.errors[STALLED]
    assert "timed out" in (await status(matcher_pool, STALLED))["last_error"]


async def test_a_straggler_does_not_hold_back_the_next_round(
    make_scheduler: Callable[..., UpdateScheduler], matcher_pool: asyncpg.Pool, serve: FeedServer
) -> None:
    serve.drips["v3.6/community.json"] = (2.0, 1)  # no deadline, no floor: it never ends
    scheduler = make_scheduler(period=timedelta(seconds=0.5))
    scheduler.start()
    try:
        for _ in range(300):
            if serve.count("v3.6/main.json") >= 3:
                break
            await asyncio.sleep(0.1)
        assert serve.count("v3.6/main.json") >= 3
        # The others ran round after round while the stalled one was still on its first.
        assert serve.count("v3.6/community.json") == 1
        for name in OTHERS:
            assert (await status(matcher_pool, name))["last_run_succeeded"]
    finally:
        await scheduler.close()
