"""Every matcher's candidate query is answered from the covering index (migration 002)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from clair_common.vulnerable import RULE_COLUMNS, Matcher, default_matchers
from clair_matcher.matching import _shape
from clair_matcher.store import MatcherStore
from clair_matcher.store._matching import candidates_sql


def _query(matcher: Matcher) -> tuple[str, list[list[Any]]]:
    constraints, need_fixed = _shape(matcher)
    columns = tuple(c.vuln_column for c in constraints)
    selected = tuple(c for c in RULE_COLUMNS if c in matcher.rule_columns)
    params: list[list[Any]] = [[0], ["openssl"], ["binary"], *[["x"] for _ in columns]]
    return candidates_sql(columns, need_fixed, selected), params


@pytest.mark.parametrize("matcher", default_matchers(), ids=lambda m: m.name)
async def test_candidate_query_is_index_only(matcher_pool: asyncpg.Pool, matcher: Matcher) -> None:
    async with matcher_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO vuln (hash, updater, name, package_name, package_kind)"
            " SELECT sha256(i::text::bytea), 'test', 'CVE-' || i, 'pkg' || (i % 500), 'binary'"
            " FROM generate_series(1, 5000) AS i ON CONFLICT DO NOTHING"
        )
    await MatcherStore(matcher_pool).refresh_statistics()
    sql, params = _query(matcher)
    async with matcher_pool.acquire() as conn, conn.transaction():
        # Only an index plan is allowed; the question is whether it needs the heap.
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *params))
    assert "Index Only Scan using vuln_package_cover" in plan, plan


async def test_refresh_statistics_marks_new_rows_all_visible(matcher_pool: asyncpg.Pool) -> None:
    async with matcher_pool.acquire() as conn, conn.transaction():
        # As ingest commits: VACUUM cannot mark rows of an unflushed async commit all-visible.
        await conn.execute("SET LOCAL synchronous_commit = on")
        await conn.execute(
            "INSERT INTO vuln (hash, updater, name, package_name, package_kind)"
            " SELECT sha256(('v' || i)::bytea), 'test', 'CVE-' || i, 'pkg', 'binary'"
            " FROM generate_series(1, 2000) AS i ON CONFLICT DO NOTHING"
        )
    await MatcherStore(matcher_pool).refresh_statistics()
    async with matcher_pool.acquire() as conn:
        pages, visible = await conn.fetchrow(
            "SELECT relpages, relallvisible FROM pg_class WHERE oid = 'matcher.vuln'::regclass"
        )
    assert pages > 0 and visible == pages
