"""Update diffs, whole and in batches (what the notifier reads), on a real database."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from clair_matcher.store import MatcherStore
from tests.matcher.test_matching import DEBIAN, SOURCE, insert_vulnerabilities, new_operation, v


async def operation(pool: asyncpg.Pool, names: list[tuple[str, str]]) -> uuid.UUID:
    """A new operation of one updater holding (id, CVE name) vulnerabilities; its ref."""
    async with pool.acquire() as conn, conn.transaction():
        uo = await new_operation(conn, "debian/updater")
        vulns = [v(vid, name, SOURCE, "", **DEBIAN) for vid, name in names]
        await insert_vulnerabilities(conn, uo, vulns)
        ref: uuid.UUID = await conn.fetchval("SELECT ref FROM update_operation WHERE id = $1", uo)
        return ref


async def test_batches_are_the_diff(matcher_pool: asyncpg.Pool) -> None:
    store = MatcherStore(matcher_pool)
    first = await operation(matcher_pool, [("1", "CVE-1"), ("2", "CVE-2"), ("3", "CVE-3")])
    second = await operation(matcher_pool, [("4", "CVE-4"), ("5", "CVE-5")])
    async with matcher_pool.acquire() as conn:  # the second keeps CVE-2 and CVE-3 (same rows)
        uo = await conn.fetchval("SELECT id FROM update_operation WHERE ref = $1", second)
        await conn.execute("INSERT INTO uo_vuln (uo, vuln) VALUES ($1, 2), ($1, 3)", uo)

    diff = await store.update_diff(first, second)
    assert diff is not None
    assert sorted(x.name for x in diff.added) == ["CVE-4", "CVE-5"]
    assert [x.name for x in diff.removed] == ["CVE-1"]
    batches = [
        (reason, [x.name for x in batch])
        async for reason, batch in store.update_diff_batches(first, second, 1)
    ]
    assert sorted(batches) == [("added", ["CVE-4"]), ("added", ["CVE-5"]), ("removed", ["CVE-1"])]

    # No previous operation: everything is added, in batches of at most `size`.
    sizes = [len(b) async for _, b in store.update_diff_batches(None, second, 3)]
    assert sizes == [3, 1]
    whole = await store.update_diff(None, second)
    assert whole is not None and len(whole.added) == 4 and whole.removed == []


async def test_unknown_operation(matcher_pool: asyncpg.Pool) -> None:
    store = MatcherStore(matcher_pool)
    assert await store.update_diff(None, uuid.uuid4()) is None
    with pytest.raises(LookupError):
        async for _ in store.update_diff_batches(None, uuid.uuid4(), 10):
            pass
