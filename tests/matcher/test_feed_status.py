"""Offline, the update loop says once which feeds could not be reached and what that means,
then only changes of state (through the real scheduler and feed server)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
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

LOGGER = "clair.matcher.updates"


@pytest.fixture
async def scheduler(
    matcher_pool: asyncpg.Pool,  # noqa: F811
    pg_dsn: str,
    feed_server: FeedServer,  # noqa: F811
    alpine_secdb: dict[str, bytes],  # noqa: F811
    pypa_osv: list[dict[str, object]],  # noqa: F811
) -> AsyncIterator[UpdateScheduler]:
    feed_server.put("last-update", alpine_secdb["last-update"])
    for release in ("v3.3", "v3.4", "v3.5"):
        feed_server.put(f"{release}/main.json", alpine_secdb[f"{release}/main.json"])
    feed_server.put("ecosystems.txt", b"PyPI\n")
    feed_server.put("PyPI/all.zip", osv_zip(pypa_osv[:50]))
    locks = AdvisoryLocks(pg_dsn)
    made = UpdateScheduler(
        MatcherStore(matcher_pool),
        locks,
        sets=["alpine", "osv"],
        config={"alpine": {"url": feed_server.url}, "osv": {"url": feed_server.url}},
        period=timedelta(minutes=30),
        retention=10,
    )
    try:
        yield made
    finally:
        await made.close()
        await locks.close()


def _loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_offline_start_is_one_summary_then_changes_only(
    scheduler: UpdateScheduler,
    feed_server: FeedServer,  # noqa: F811
    pypa_osv: list[dict[str, object]],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.status_overrides.update({"last-update": 503, "ecosystems.txt": 503})
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        first = await scheduler.run_once()
        assert set(first.errors) == {"alpine", "osv"}
        (summary,) = _loud(caplog)
        assert "2 of 2 vulnerability feeds could not be reached: alpine, osv" in summary
        assert "vulnerability reports stay empty until a feed loads" in summary
        assert "clairctl import-updaters" in summary
        assert "Retrying every 30m" in summary

        caplog.clear()
        await scheduler.run_once()  # still offline: nothing said above debug
        assert _loud(caplog) == []

        caplog.clear()
        feed_server.status_overrides.clear()
        third = await scheduler.run_once()
        assert "failed" not in third.outcomes.values(), third.errors
        assert _loud(caplog) == []
        back = [r.getMessage() for r in caplog.records if "reachable again" in r.getMessage()]
        assert sorted(back) == [
            "updater alpine: feed reachable again",
            "updater osv: feed reachable again",
        ]

        caplog.clear()
        feed_server.status_overrides["PyPI/all.zip"] = 500
        feed_server.put("PyPI/all.zip", osv_zip(pypa_osv[:60]))  # changed, then refused
        await scheduler.run_once()
        (line,) = _loud(caplog)
        assert line.startswith("updater osv/pypi failed: ")


async def test_partly_offline_says_what_reports_miss(
    scheduler: UpdateScheduler,
    feed_server: FeedServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.status_overrides["ecosystems.txt"] = 503
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await scheduler.run_once()
    (summary,) = _loud(caplog)
    assert summary.startswith("1 of 4 vulnerability feeds could not be reached: osv (first error: ")
    assert "reports miss the advisories of these feeds until they load" in summary
