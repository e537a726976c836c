"""A set whose discovery fails (a 500 on OSV's `ecosystems.txt`) is recorded in
`updater_status`, for the set and for the updaters it found before, not only logged: the
status no longer shows the old success. Real feed server, real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from clair_common.db.locks import AdvisoryLocks
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.store import MatcherStore
from tests.fixtures.feeds import FeedServer, osv_zip


async def status(pool: asyncpg.Pool, name: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM updater_status WHERE updater_name = $1", name)


async def test_discovery_failure_is_recorded(
    matcher_pool: asyncpg.Pool,
    pg_dsn: str,
    feed_server: FeedServer,
    pypa_osv: list[dict[str, object]],
) -> None:
    feed_server.put("ecosystems.txt", b"PyPI\n")
    feed_server.put("PyPI/all.zip", osv_zip(pypa_osv))
    for restarted in (False, True):  # a restarted scheduler has discovered nothing yet
        locks = AdvisoryLocks(pg_dsn)
        scheduler = UpdateScheduler(
            MatcherStore(matcher_pool),
            locks,
            sets=["osv"],
            config={"osv": {"url": feed_server.url}},
            period=timedelta(hours=6),
            retention=10,
        )
        try:
            feed_server.status_overrides.pop("ecosystems.txt", None)
            if not restarted:
                first = await scheduler.run_once()
                assert first.outcomes == {"osv/pypi": "updated"}, first.errors
            row = await status(matcher_pool, "osv/pypi")
            assert row is not None and row["last_run_succeeded"]

            feed_server.status_overrides["ecosystems.txt"] = 500
            second = await scheduler.run_once()
            assert second.outcomes == {"osv": "failed"}
            for name in ("osv", "osv/pypi"):
                row = await status(matcher_pool, name)
                assert row is not None, name
                assert not row["last_run_succeeded"]
                assert row["last_error"].startswith("discovery failed: ")
                assert "500" in row["last_error"]
            pypi = await status(matcher_pool, "osv/pypi")
            assert pypi is not None and pypi["last_success"] is not None  # history kept

            # Discovery works again: the updater runs and its status recovers.
            feed_server.status_overrides.pop("ecosystems.txt")
            third = await scheduler.run_once()
            assert third.outcomes == {"osv/pypi": "unchanged"}
            row = await status(matcher_pool, "osv/pypi")
            assert row is not None and row["last_run_succeeded"]
        finally:
            await scheduler.close()
            await locks.close()
