"""The matcher holds each updater's newest refs until PostgreSQL says they changed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import pytest

from clair_common.db.migrate import migrate
from clair_common.db.pool import create_pool
from clair_common.models import Distribution, Package, Vulnerability
from clair_matcher.store import LatestRefs, MatcherStore, Refs
from clair_matcher.store import _latest as latest
from clair_matcher.store._latest import CHANNEL


class Counted:
    def __init__(self, store: MatcherStore) -> None:
        self.store = store
        self.calls = 0

    async def __call__(self) -> Refs:
        self.calls += 1
        return await self.store.latest_refs()


def record(name: str) -> Vulnerability:
    return Vulnerability(
        updater="test-updater",
        name=name,
        package=Package(name="openssl", kind="source"),
        distribution=Distribution(did="debian", version_id="12"),
        fixed_in_version="3.0.9-1",
    )


async def until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_refs_are_held_until_an_update_lands(matcher_pool: asyncpg.Pool) -> None:
    query = Counted(MatcherStore(matcher_pool))
    refs = LatestRefs(matcher_pool, query)
    await refs.start()
    try:
        assert refs.listening
        assert await refs.get() == [] and await refs.get() == []
        assert query.calls == 1
        await MatcherStore(matcher_pool).update_vulnerabilities(
            "test-updater", "fp1", [record("CVE-1")]
        )
        await until(lambda: refs._held is None)
        (first,) = await refs.get()
        assert first[:2] == ("vulnerability", "test-updater") and query.calls == 2
        assert await refs.get() == [first] and query.calls == 2
        await MatcherStore(matcher_pool).update_vulnerabilities(
            "test-updater", "fp2", [record("CVE-2")]
        )
        await until(lambda: refs._held is None)
        (second,) = await refs.get()
        assert second != first and query.calls == 3
        refs.changed()  # a write of this process: no waiting for its notification
        assert refs._held is None
        await refs.get()
        assert query.calls == 4
    finally:
        await refs.close()


async def test_a_query_overlapping_a_change_is_not_held(matcher_pool: asyncpg.Pool) -> None:
    store = MatcherStore(matcher_pool)
    refs: LatestRefs

    async def racing() -> Refs:
        seen = refs._changes
        answer = await store.latest_refs()
        await matcher_pool.execute(f"NOTIFY {CHANNEL}")  # a change commits meanwhile
        await until(lambda: refs._changes > seen)
        return answer

    refs = LatestRefs(matcher_pool, racing)
    await refs.start()
    try:
        await refs.get()
        assert refs._held is None, "an answer older than a change must not be kept"
    finally:
        await refs.close()


async def test_a_lost_listener_means_asking_every_time_then_listening_again(
    matcher_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(latest, "RETRY", 0.2)
    query = Counted(MatcherStore(matcher_pool))
    refs = LatestRefs(matcher_pool, query)
    await refs.start()
    try:
        await refs.get()
        assert refs._conn is not None
        pid = refs._conn.get_server_pid()
        await matcher_pool.execute("SELECT pg_terminate_backend($1)", pid)
        await until(lambda: not refs.listening)
        await refs.get()
        await refs.get()
        assert query.calls == 3, "nothing is held while nobody listens"
        await asyncio.sleep(0.3)
        await refs.get()  # listens again
        await refs.get()
        assert refs.listening and query.calls == 4
    finally:
        await refs.close()


async def test_a_pool_of_one_connection_is_not_held_for_listening(pg_dsn: str) -> None:
    await migrate(pg_dsn, "matcher", "clair_matcher")
    pool = await create_pool(
        pg_dsn, schema="matcher", application_name="test", min_size=1, max_size=1
    )
    try:
        query = Counted(MatcherStore(pool))
        refs = LatestRefs(pool, query)
        await refs.start()
        await refs.get()
        await refs.get()
        assert not refs.listening and query.calls == 2
        await refs.close()
    finally:
        await asyncio.wait_for(pool.close(), 10)
