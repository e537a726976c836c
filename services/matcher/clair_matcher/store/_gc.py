"""Retention: old update operations and the rows no operation links any more; statistics."""

from __future__ import annotations

import logging

import asyncpg

from clair_matcher.store._ingest import LINKING_LOCK
from clair_matcher.store._metrics import VULNSTORE

log = logging.getLogger("clair.matcher.ingest")

GC_THROTTLE = 50

# Rows lose their last link only when operations are deleted: the scan for unlinked rows (a
# pass over all of `vuln`) runs after deletions, or when an earlier one was skipped here.
_unlinked_scan_owed = False


async def refresh_statistics(pool: asyncpg.Pool) -> None:
    """VACUUM (ANALYZE) what matching reads, once an update has added rows.

    The candidate queries are index-only scans (migration 002) only over pages VACUUM has
    marked all-visible, which freshly COPYed rows are not; autovacuum would get there minutes
    later. SKIP_LOCKED: a replica already vacuuming them does the job for both.
    """
    try:
        async with pool.acquire() as conn:
            await conn.execute("VACUUM (ANALYZE, SKIP_LOCKED) vuln, uo_vuln, enrichment, uo_enrich")
    except asyncpg.PostgresError as exc:  # e.g. not the owner: only slower matching
        log.warning("vacuum after update failed: %s", exc)


async def collect_garbage(pool: asyncpg.Pool, retention: int, throttle: int = GC_THROTTLE) -> int:
    """Keeps the newest `retention` operations per updater and kind, deleting at most
    `throttle` older ones per call (oldest first), then rows no operation links any more.
    Returns how many eligible operations remain; retention 0 turns GC off."""
    global _unlinked_scan_owed
    if retention <= 0:
        return 0
    async with pool.acquire() as conn:
        async with conn.transaction():
            with VULNSTORE.observed("gc", "updateOps"):
                eligible = await conn.fetch(
                    "SELECT id FROM (SELECT id, row_number() OVER"
                    " (PARTITION BY updater, kind ORDER BY id DESC) AS rn"
                    " FROM update_operation) r"
                    " WHERE rn > $1 AND id NOT IN (SELECT uo_id FROM latest_update_operation)"
                    " ORDER BY id",
                    retention,
                )
            doomed = [r["id"] for r in eligible[:throttle]]
            if doomed:
                await conn.execute("DELETE FROM update_operation WHERE id = ANY($1)", doomed)
                _unlinked_scan_owed = True
        if not _unlinked_scan_owed:
            return len(eligible)
        async with conn.transaction():
            # Skipped while an update is in flight (it may be linking these rows); the next
            # collection gets them.
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LINKING_LOCK):
                log.debug("gc: updates in flight; unlinked rows left for the next run")
                return len(eligible) - len(doomed)
            with VULNSTORE.observed("gc", "deleteVulns"):
                vulns = await conn.execute(
                    "DELETE FROM vuln v"
                    " WHERE NOT EXISTS (SELECT 1 FROM uo_vuln l WHERE l.vuln = v.id)"
                )
            with VULNSTORE.observed("gc", "deleteEnrichments"):
                enrichments = await conn.execute(
                    "DELETE FROM enrichment e"
                    " WHERE NOT EXISTS (SELECT 1 FROM uo_enrich l WHERE l.enrich = e.id)"
                )
        _unlinked_scan_owed = False
    log.debug(
        "gc: deleted %d operations, %s vulns, %s enrichments",
        len(doomed),
        vulns.split()[-1],
        enrichments.split()[-1],
    )
    return len(eligible) - len(doomed)


async def drop_updater(pool: asyncpg.Pool, updater: str) -> tuple[int, int]:
    """Deletes every operation of `updater`, then its vulnerabilities no operation links any
    more, in one transaction; returns (operations, vulnerabilities) deleted."""
    async with pool.acquire() as conn, conn.transaction():
        ops = await conn.execute("DELETE FROM update_operation WHERE updater = $1", updater)
        vulns = await conn.execute(
            "DELETE FROM vuln v WHERE v.updater = $1"
            " AND NOT EXISTS (SELECT 1 FROM uo_vuln l WHERE l.vuln = v.id)",
            updater,
        )
    return int(ops.split()[-1]), int(vulns.split()[-1])
