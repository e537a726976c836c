"""Storing updater runs: snapshots of vulnerabilities and enrichments as update operations.

An update is one transaction (clair-api.md 7.1): create the update operation, store the
records in batches deduplicated by content hash, link every record of the snapshot to the new
operation, point `latest_update_operation` at it. A failure anywhere rolls all of it back, so
the previous operation stays the latest and nothing partial is visible.

A batch of new records (a first run, a new feed) is COPYed straight into `vuln` with ids taken
from its sequence, and linked by those ids, inside a savepoint: as cheap as a bare COPY plus
the links. A batch that hits a stored hash is rolled back to the savepoint and stored the
careful way instead, through a staging table (insert-or-ignore by hash), as are the batches
of re-runs, where most records are stored already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Any

import asyncpg

from clair_common.db.locks import lock_key
from clair_common.models import Vulnerability
from clair_matcher.store._metrics import VULNSTORE
from clair_matcher.store._rows import ROW_COLUMNS, STAGE_COLUMNS, Row, enrichment_row, vuln_row

log = logging.getLogger("clair.matcher.ingest")

BATCH_SIZE = 10_000
BATCHES_AHEAD = 2  # built by the worker thread while the database stores the current one
KIND_VULNERABILITY = "vulnerability"
KIND_ENRICHMENT = "enrichment"
# Link tables have no foreign keys (see the migration), so an update that links an existing
# row and a GC deleting that row as unlinked must not overlap.
LINKING_LOCK = lock_key("matcher:linking")

_STAGE_LIST = ", ".join(STAGE_COLUMNS)

# Hands out one id per new row and links them all to the operation in the same statement
# (the link tables have no foreign keys, so the rows may follow).
_RESERVE_AND_LINK = """
WITH ids AS MATERIALIZED (
    SELECT nextval('vuln_id_seq'::regclass) AS id FROM generate_series(1, $2::int)
), linked AS (
    INSERT INTO uo_vuln (uo, vuln) SELECT $1::bigint, id FROM ids
)
SELECT array_agg(id) FROM ids
"""

# Columns whose default is what an empty field holds ('' or NULL), from the catalog.
_DEFAULTED_COLUMNS = """
SELECT coalesce(array_agg(a.attname::text), '{}') FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = 'vuln'::regclass AND a.attnum > 0 AND NOT a.attisdropped
  AND CASE WHEN d.adbin IS NULL THEN NOT a.attnotnull
      ELSE pg_get_expr(d.adbin, d.adrelid) = '''''::text' END
"""

_CREATE_STAGE = (
    "CREATE TEMP TABLE vuln_stage ON COMMIT DROP AS"
    f" SELECT updater, {_STAGE_LIST} FROM vuln WITH NO DATA"
)
# Two ways to store a staged batch; which one is cheaper depends on how many of its rows the
# table has already (decided per batch from the previous one, see `_VulnWriter`).
#
# Insert first (some rows exist already, yet most are new): new rows come back from `fresh`
# and are linked with a plain INSERT; `_LINK_EXISTING` then links the rest of the batch by
# hash (a per-row index probe: a scalar subquery, because a join against the unanalyzed
# stage gets planned as a scan of all of `vuln`).
_INSERT_FIRST = f"""
WITH fresh AS (
    INSERT INTO vuln (updater, {_STAGE_LIST})
    SELECT $2::text, {_STAGE_LIST} FROM vuln_stage
    ON CONFLICT (hash) DO NOTHING
    RETURNING id
), linked AS (
    INSERT INTO uo_vuln (uo, vuln) SELECT $1::bigint, id FROM fresh RETURNING 1
)
SELECT count(*) AS inserted FROM linked
"""
_LINK_EXISTING = """
INSERT INTO uo_vuln (uo, vuln)
SELECT $1::bigint, (SELECT v.id FROM vuln v WHERE v.hash = s.hash) FROM vuln_stage s
ON CONFLICT DO NOTHING
"""
# Probe first (a re-run: most rows exist): one index probe per row finds the known ones; only
# the others are inserted, picked from the stage by row address. ON CONFLICT absorbs records
# stored by an earlier batch of the same run.
_PROBE_FIRST = f"""
WITH known AS MATERIALIZED (
    SELECT s.ctid AS at, (SELECT v.id FROM vuln v WHERE v.hash = s.hash) AS id FROM vuln_stage s
), fresh AS (
    INSERT INTO vuln (updater, {_STAGE_LIST})
    SELECT $2::text, {_STAGE_LIST} FROM vuln_stage
    WHERE ctid = ANY(ARRAY(SELECT at FROM known WHERE id IS NULL))
    ON CONFLICT (hash) DO NOTHING
    RETURNING id
), linked AS (
    INSERT INTO uo_vuln (uo, vuln)
    SELECT $1::bigint, id FROM known WHERE id IS NOT NULL
    UNION ALL
    SELECT $1::bigint, id FROM fresh
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM fresh) AS inserted, (SELECT count(*) FROM linked) AS linked
"""


class _VulnWriter:
    """Stores the batches of one update operation on the transaction's connection."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        uo_id: int,
        updater: str,
        fresh: bool,
        defaulted: frozenset[str],
    ) -> None:
        self.conn, self.uo_id, self.updater = conn, uo_id, updater
        # Row positions a COPY may leave out when no row of the batch sets them.
        self.optional = [i for i, c in enumerate(ROW_COLUMNS) if c in defaulted]
        # "copy": straight into `vuln`; "insert" / "probe": through the stage, see above.
        self.mode = "copy" if fresh else "probe"
        self.staging = False
        self.inserted = self.linked = 0

    async def store(self, rows: list[Row]) -> None:
        """Stores rows with distinct hashes (see `_row_batches`)."""
        if self.mode == "copy":
            try:
                async with self.conn.transaction():  # a savepoint
                    await self._copy(rows)
                self.inserted += len(rows)
                self.linked += len(rows)
                return
            except asyncpg.UniqueViolationError:
                log.debug("%s: batch meets stored records; staged instead", self.updater)
                self.mode = "insert"
        inserted, linked = await self._staged(rows)
        self.inserted += inserted
        self.linked += linked
        # The next batch likely looks like this one.
        self.mode = (
            "copy" if inserted == len(rows) else "probe" if inserted * 2 < len(rows) else "insert"
        )

    async def _copy(self, rows: list[Row]) -> None:
        # Columns empty throughout the batch are left to their defaults: most feeds fill only
        # half of them, and every field sent costs on both ends.
        unset = {i for i in self.optional if not any(map(itemgetter(i), rows))}
        keep = [i for i in range(len(ROW_COLUMNS)) if i not in unset]
        pick = itemgetter(*keep)
        ids = await self.conn.fetchval(_RESERVE_AND_LINK, self.uo_id, len(rows))
        records = ((vuln_id, *pick(row)) for vuln_id, row in zip(ids, rows, strict=True))
        columns = ["id", *(ROW_COLUMNS[i] for i in keep)]
        await self.conn.copy_records_to_table("vuln", records=records, columns=columns)

    async def _staged(self, rows: list[Row]) -> tuple[int, int]:
        """Inserts the rows not stored yet and links all; returns (inserted, links added)."""
        conn = self.conn
        if not self.staging:
            await conn.execute(_CREATE_STAGE)
            self.staging = True
        await conn.copy_records_to_table("vuln_stage", records=rows, columns=ROW_COLUMNS)
        if self.mode == "probe":
            counts = await conn.fetchrow(_PROBE_FIRST, self.uo_id, self.updater)
            inserted, linked = int(counts["inserted"]), int(counts["linked"])
        else:
            inserted = linked = int(await conn.fetchval(_INSERT_FIRST, self.uo_id, self.updater))
            if inserted < len(rows):
                status = await conn.execute(_LINK_EXISTING, self.uo_id)
                linked += int(status.split()[-1])
        await conn.execute("TRUNCATE vuln_stage")
        return inserted, linked


@dataclass(frozen=True, slots=True)
class IngestResult:
    ref: str
    uo_id: int
    records: int  # rows staged (records without a package name are not counted)
    inserted: int  # rows new to `vuln`
    linked: int  # distinct vulns linked to the new operation


def _rows(batch: Iterable[Vulnerability], updater: str) -> tuple[list[Row], int]:
    """The rows of a batch with distinct hashes (a COPY must not meet the same one twice),
    and how many rows it had before that."""
    unique: dict[bytes, Row] = {}
    count = 0
    for v in batch:
        row = vuln_row(v, updater)
        if row is not None:
            unique.setdefault(row[1], row)
            count += 1
    return list(unique.values()), count


RowBatch = tuple[list[Row], int]


async def _row_batches(
    vulns: Iterable[Vulnerability] | AsyncIterable[Vulnerability], updater: str, size: int
) -> AsyncGenerator[RowBatch, None]:
    """Batches of rows (see `_rows`); a plain iterator is drained in a worker thread (parsing
    and hashing are CPU work) so the event loop keeps serving requests meanwhile."""
    if isinstance(vulns, AsyncIterable):
        pending: list[Vulnerability] = []
        async for v in vulns:
            pending.append(v)
            if len(pending) >= size:
                yield _rows(pending, updater)
                pending = []
        if pending:
            yield _rows(pending, updater)
        return
    it: Iterator[Vulnerability] = iter(vulns)

    def next_batch() -> tuple[RowBatch, bool]:
        batch = list(islice(it, size))
        return _rows(batch, updater), len(batch) < size

    # The worker stays up to BATCHES_AHEAD batches ahead of the caller's writes: parsing is
    # the slower half, so it must never wait for the database.
    ready: asyncio.Queue[tuple[RowBatch, bool]] = asyncio.Queue(BATCHES_AHEAD)
    call: asyncio.Future[tuple[RowBatch, bool]] | None = None

    async def produce() -> None:
        nonlocal call
        while True:
            call = asyncio.ensure_future(asyncio.to_thread(next_batch))
            built = await asyncio.shield(call)
            await ready.put(built)
            if built[1]:
                return

    producer = asyncio.ensure_future(produce())
    try:
        while True:
            getter = asyncio.ensure_future(ready.get())
            await asyncio.wait([getter, producer], return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():  # the producer failed
                getter.cancel()
                producer.result()
            batch, last = getter.result()
            if batch[1]:
                yield batch
            if last:
                return
    finally:
        producer.cancel()
        if call is not None:
            # Let the worker finish its batch: the iterator must not be abandoned mid-call.
            await asyncio.wait([call])
            if not call.cancelled():
                call.exception()  # retrieved, so an abandoned failure is not reported
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer


# -- delta updates (clair-api.md 7.1) ------------------------------------------------------
class DeltaRecords(Iterator[Vulnerability]):
    """A delta updater's output: records of the documents that changed since its last run.

    The new operation also keeps every record of the previous one whose name is neither in
    `replaced` (names the updater re-sent or deleted; the updater adds deleted names while it
    is iterated) nor among the records streamed here.
    """

    def __init__(self, records: Iterable[Vulnerability], replaced: set[str] | None = None) -> None:
        self._records = iter(records)
        self.replaced: set[str] = replaced if replaced is not None else set()

    def __iter__(self) -> DeltaRecords:
        return self

    def __next__(self) -> Vulnerability:
        vuln = next(self._records)
        self.replaced.add(vuln.name)
        return vuln


_CREATE_DELTA_NAMES = "CREATE TEMP TABLE delta_names (name text) ON COMMIT DROP"
_CARRY_OVER = """
INSERT INTO uo_vuln (uo, vuln)
SELECT $1::bigint, l.vuln FROM uo_vuln l JOIN vuln v ON v.id = l.vuln
WHERE l.uo = $2::bigint AND NOT EXISTS (SELECT 1 FROM delta_names d WHERE d.name = v.name)
ON CONFLICT DO NOTHING
"""


async def _carry_over(
    conn: asyncpg.Connection, uo_id: int, previous_uo: int, replaced: set[str]
) -> int:
    """Links the previous operation's records whose names were not replaced; returns the count."""
    await conn.execute(_CREATE_DELTA_NAMES)
    await conn.copy_records_to_table(
        "delta_names", records=[(name,) for name in replaced], columns=("name",)
    )
    await conn.execute("ANALYZE delta_names")
    status = await conn.execute(_CARRY_OVER, uo_id, previous_uo)
    return int(status.split()[-1])


async def update_vulnerabilities(
    pool: asyncpg.Pool,
    updater: str,
    fingerprint: str,
    vulns: Iterable[Vulnerability] | AsyncIterable[Vulnerability],
    *,
    batch_size: int = BATCH_SIZE,
) -> IngestResult:
    """Stores a complete snapshot as a new update operation of `updater`, atomically.

    `DeltaRecords` are a partial snapshot: the previous operation's other records carry over.
    """
    records = 0
    async with pool.acquire() as conn, conn.transaction():
        # Durable before it is reported, and (the commit flushed) the VACUUM that follows can
        # mark the new rows all-visible, also where the server runs with asynchronous commit.
        await conn.execute("SET LOCAL synchronous_commit = on")
        # Shared with other updates; garbage collection needs it exclusively to delete rows.
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", LINKING_LOCK)
        delta = "true" if isinstance(vulns, DeltaRecords) else "false"
        with VULNSTORE.observed("updatevulnerabilities", "create", is_delta=delta):
            uo = await conn.fetchrow(
                "INSERT INTO update_operation (updater, fingerprint, kind) VALUES ($1, $2, $3)"
                " RETURNING id, ref",
                updater,
                fingerprint,
                KIND_VULNERABILITY,
            )
        previous_uo = await conn.fetchval(
            "SELECT uo_id FROM latest_update_operation WHERE updater = $1 AND kind = $2",
            updater,
            KIND_VULNERABILITY,
        )
        # A first run finds no rows stored; a re-run finds most.
        defaulted = frozenset(await conn.fetchval(_DEFAULTED_COLUMNS))
        writer = _VulnWriter(conn, uo["id"], updater, previous_uo is None, defaulted)
        async with contextlib.aclosing(_row_batches(vulns, updater, batch_size)) as batches:
            async for rows, count in batches:
                with VULNSTORE.observed("updatevulnerabilities", "insert_batch", is_delta=delta):
                    await writer.store(rows)
                records += count
        inserted, linked = writer.inserted, writer.linked
        if isinstance(vulns, DeltaRecords) and previous_uo is not None:
            with VULNSTORE.observed("updatevulnerabilities", "assocExisting", is_delta=delta):
                linked += await _carry_over(conn, uo["id"], previous_uo, vulns.replaced)
        await conn.execute(
            "INSERT INTO latest_update_operation (updater, kind, uo_id) VALUES ($1, $2, $3)"
            " ON CONFLICT (updater, kind) DO UPDATE SET uo_id = EXCLUDED.uo_id",
            updater,
            KIND_VULNERABILITY,
            uo["id"],
        )
    return IngestResult(str(uo["ref"]), uo["id"], records, inserted, linked)


# -- enrichments ---------------------------------------------------------------------------
EnrichmentRow = tuple[Sequence[str], Any]  # (tags, JSON value): an enricher's record

_CREATE_ENRICH_STAGE = (
    "CREATE TEMP TABLE enrich_stage ON COMMIT DROP AS"
    " SELECT hash, tags, data FROM enrichment WITH NO DATA"
)
# As _PROBE_FIRST for vulns: rows already stored are linked by hash, new ones inserted.
_STORE_ENRICH_BATCH = """
WITH known AS MATERIALIZED (
    SELECT (SELECT e.id FROM enrichment e WHERE e.hash = s.hash) AS id FROM enrich_stage s
), fresh AS (
    INSERT INTO enrichment (hash, updater, tags, data)
    SELECT hash, $2::text, tags, data FROM enrich_stage
    ON CONFLICT (hash) DO NOTHING
    RETURNING id
), linked AS (
    INSERT INTO uo_enrich (uo, enrich)
    SELECT $1::bigint, id FROM known WHERE id IS NOT NULL
    UNION ALL
    SELECT $1::bigint, id FROM fresh
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM fresh) AS inserted, (SELECT count(*) FROM linked) AS linked
"""


async def _enrichment_batches(
    records: Iterable[EnrichmentRow] | AsyncIterable[EnrichmentRow], updater: str, size: int
) -> AsyncGenerator[list[tuple[bytes, list[str], Any]], None]:
    """Batches of staged rows; a plain iterator (a parser) is drained in a worker thread."""
    if isinstance(records, AsyncIterable):
        pending: list[tuple[bytes, list[str], Any]] = []
        async for tags, data in records:
            pending.append(enrichment_row(tags, data, updater))
            if len(pending) >= size:
                yield pending
                pending = []
        if pending:
            yield pending
        return
    it: Iterator[EnrichmentRow] = iter(records)

    def next_batch() -> list[tuple[bytes, list[str], Any]]:
        return [enrichment_row(tags, data, updater) for tags, data in islice(it, size)]

    while batch := await asyncio.to_thread(next_batch):
        yield batch


async def update_enrichments(
    pool: asyncpg.Pool,
    updater: str,
    fingerprint: str,
    records: Iterable[EnrichmentRow] | AsyncIterable[EnrichmentRow],
    *,
    batch_size: int = BATCH_SIZE,
) -> IngestResult:
    """Stores a complete enrichment snapshot as a new operation of kind "enrichment"."""
    staged = inserted = linked = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = on")  # as in update_vulnerabilities
        # Shared with other updates; GC takes it exclusively before deleting unlinked rows.
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", LINKING_LOCK)
        with VULNSTORE.observed("updateenrichments", "create"):
            uo = await conn.fetchrow(
                "INSERT INTO update_operation (updater, fingerprint, kind) VALUES ($1, $2, $3)"
                " RETURNING id, ref",
                updater,
                fingerprint,
                KIND_ENRICHMENT,
            )
        await conn.execute(_CREATE_ENRICH_STAGE)
        batches = _enrichment_batches(records, updater, batch_size)
        async with contextlib.aclosing(batches):
            async for rows in batches:
                with VULNSTORE.observed("updateenrichments", "insert_batch"):
                    await conn.copy_records_to_table(
                        "enrich_stage", records=rows, columns=("hash", "tags", "data")
                    )
                    counts = await conn.fetchrow(_STORE_ENRICH_BATCH, uo["id"], updater)
                    await conn.execute("TRUNCATE enrich_stage")
                staged += len(rows)
                inserted += int(counts["inserted"])
                linked += int(counts["linked"])
        await conn.execute(
            "INSERT INTO latest_update_operation (updater, kind, uo_id) VALUES ($1, $2, $3)"
            " ON CONFLICT (updater, kind) DO UPDATE SET uo_id = EXCLUDED.uo_id",
            updater,
            KIND_ENRICHMENT,
            uo["id"],
        )
    return IngestResult(str(uo["ref"]), uo["id"], staged, inserted, linked)
