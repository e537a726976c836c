"""Update operations: listing, the newest refs, diffs between two, deletion."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from clair_common.models import UpdateDiff, UpdateOperation, Vulnerability
from clair_matcher.store._metrics import VULNSTORE, kind_query
from clair_matcher.store._rows import VULN_COLUMNS, vuln_from_row

LATEST_REFS_SQL = (
    "SELECT l.kind, l.updater, u.ref FROM latest_update_operation l"
    " JOIN update_operation u ON u.id = l.uo_id ORDER BY l.kind, l.updater"
)


def _uo(r: asyncpg.Record) -> UpdateOperation:
    return UpdateOperation(
        ref=str(r["ref"]),
        updater=r["updater"],
        fingerprint=r["fingerprint"],
        date=r["date"],
        kind=r["kind"],
    )


async def initialized(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM vuln)"))


async def update_operations(
    pool: asyncpg.Pool, kind: str, *, latest: bool, updaters: Sequence[str] = ()
) -> dict[str, list[UpdateOperation]]:
    # claircore: GetLatestUpdateRefs with `latest`, else GetUpdateOperations.
    method = "getlatestrefs" if latest else "getupdateoperations"
    with VULNSTORE.observed(method, kind_query(kind)):
        rows = await _update_operations(pool, kind, latest=latest, updaters=updaters)
    out: dict[str, list[UpdateOperation]] = {}
    for r in rows:
        out.setdefault(r["updater"], []).append(_uo(r))
    return out


async def _update_operations(
    pool: asyncpg.Pool, kind: str, *, latest: bool, updaters: Sequence[str]
) -> list[asyncpg.Record]:
    if latest:
        rows = await pool.fetch(
            "SELECT u.* FROM latest_update_operation l"
            " JOIN update_operation u ON u.id = l.uo_id WHERE l.kind = $1"
            " AND (cardinality($2::text[]) = 0 OR l.updater = ANY($2))"
            " ORDER BY u.updater",
            kind,
            list(updaters),
        )
    else:
        rows = await pool.fetch(
            "SELECT * FROM update_operation WHERE kind = $1"
            " AND (cardinality($2::text[]) = 0 OR updater = ANY($2)) ORDER BY updater, id DESC",
            kind,
            list(updaters),
        )
    return list(rows)


async def latest_ref(pool: asyncpg.Pool, kind: str) -> str | None:
    with VULNSTORE.observed("getlatestupdateref", kind_query(kind)):
        ref = await pool.fetchval(
            "SELECT u.ref FROM latest_update_operation l"
            " JOIN update_operation u ON u.id = l.uo_id"
            " WHERE l.kind = $1 ORDER BY u.id DESC LIMIT 1",
            kind,
        )
    return str(ref) if ref is not None else None


async def latest_refs(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    """(kind, updater, ref) of every updater's newest operation, of every kind, sorted."""
    with VULNSTORE.observed("getlatestrefs"):
        rows = await pool.fetch(LATEST_REFS_SQL)
    return [(r["kind"], r["updater"], str(r["ref"])) for r in rows]


async def delete_update_operations(pool: asyncpg.Pool, refs: Sequence[uuid.UUID]) -> int:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "DELETE FROM update_operation WHERE ref = ANY($1::uuid[]) RETURNING updater, kind",
            list(refs),
        )
        # Point each affected updater's "latest" at its newest remaining operation.
        for r in rows:
            await conn.execute(
                "INSERT INTO latest_update_operation (updater, kind, uo_id)"
                " SELECT updater, kind, id FROM update_operation"
                " WHERE updater = $1 AND kind = $2"
                " ORDER BY id DESC LIMIT 1"
                " ON CONFLICT (updater, kind) DO UPDATE SET uo_id = EXCLUDED.uo_id",
                r["updater"],
                r["kind"],
            )
    return len(rows)


async def update_diff(
    pool: asyncpg.Pool, prev: uuid.UUID | None, cur: uuid.UUID
) -> UpdateDiff | None:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        rows = await _diff_operations(conn, prev, cur)
        if rows is None:
            return None
        cur_row, prev_row = rows
        diff = UpdateDiff(cur=_uo(cur_row), prev=_uo(prev_row) if prev_row else None)
        for reason, sql, args in _diff_queries(cur_row, prev_row):
            with VULNSTORE.observed("getupdatediff"):
                fetched = await conn.fetch(sql, *args)
            found = [vuln_from_row(r) for r in fetched]
            if reason == "added":
                diff.added = found
            else:
                diff.removed = found
    return diff


async def update_diff_batches(
    pool: asyncpg.Pool, prev: uuid.UUID | None, cur: uuid.UUID, size: int
) -> AsyncIterator[tuple[str, list[Vulnerability]]]:
    """`update_diff`'s added, then removed vulnerabilities, `size` at a time, read from one
    snapshot through a cursor: the first operation of a million-record feed is all
    "added", and held at once it would take gigabytes. Raises LookupError for an unknown
    operation."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        rows = await _diff_operations(conn, prev, cur)
        if rows is None:
            raise LookupError(f"unknown update operation in ({prev}, {cur})")
        for reason, sql, args in _diff_queries(*rows):
            cursor = await conn.cursor(sql, *args)
            while True:
                with VULNSTORE.observed("getupdatediff"):
                    batch = await cursor.fetch(size)
                if not batch:
                    break
                yield reason, [vuln_from_row(r) for r in batch]


async def _diff_operations(
    conn: asyncpg.Connection, prev: uuid.UUID | None, cur: uuid.UUID
) -> tuple[asyncpg.Record, asyncpg.Record | None] | None:
    """The two operations' rows; None if one is unknown."""
    with VULNSTORE.observed("populaterefs"):
        cur_row = await conn.fetchrow("SELECT * FROM update_operation WHERE ref = $1", cur)
    if cur_row is None:
        return None
    prev_row = None
    if prev is not None:
        with VULNSTORE.observed("populaterefs"):
            prev_row = await conn.fetchrow("SELECT * FROM update_operation WHERE ref = $1", prev)
        if prev_row is None:
            return None
    for row in (cur_row, prev_row):
        if row is not None and row["kind"] != "vulnerability":
            raise ValueError(f"update operation {row['ref']} is not of kind vulnerability")
    return cur_row, prev_row


def _diff_queries(
    cur: asyncpg.Record, prev: asyncpg.Record | None
) -> list[tuple[str, str, tuple[Any, ...]]]:
    """(reason, SQL, arguments): the vulnerabilities in `cur` and not in `prev`, then (with a
    `prev`) those in `prev` and not in `cur`."""
    prev_id = prev["id"] if prev is not None else None
    added = (
        f"SELECT {VULN_COLUMNS} FROM uo_vuln c JOIN vuln v ON v.id = c.vuln"
        " WHERE c.uo = $1 AND NOT EXISTS"
        " (SELECT 1 FROM uo_vuln p WHERE p.uo = $2 AND p.vuln = c.vuln)"
    )
    out: list[tuple[str, str, tuple[Any, ...]]] = [("added", added, (cur["id"], prev_id))]
    if prev_id is not None:
        out.append(("removed", added, (prev_id, cur["id"])))
    return out
