"""The matcher's database (schema `matcher`, migrations in ../migrations): all of its SQL.

`MatcherStore` is the one interface the service, the update scheduler and `clairctl` use; the
private modules beside it hold the statements, one job each:

- `_operations`: update operations (listing, newest refs, diffs, deletion)
- `_ingest`: an updater run stored as one update operation (vulnerabilities, enrichments)
- `_gc`: retention of old operations and of rows no operation links; statistics
- `_status`: each updater's newest fingerprint and last run
- `_latest`: the newest refs held between updates (LISTEN on migration 003's trigger)
- `_matching`: a report's candidates and matches, from one snapshot
- `_enrichment`: enrichment records by tag
- `_rows`: records to rows and back
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any

import asyncpg

from clair_common.db.migrate import migrate
from clair_common.db.pool import create_pool
from clair_common.models import UpdateDiff, UpdateOperation, Vulnerability
from clair_matcher.store import _enrichment, _gc, _ingest, _operations, _status
from clair_matcher.store._gc import GC_THROTTLE
from clair_matcher.store._ingest import (
    BATCH_SIZE,
    KIND_ENRICHMENT,
    KIND_VULNERABILITY,
    DeltaRecords,
    EnrichmentRow,
    IngestResult,
)
from clair_matcher.store._latest import LatestRefs, Refs
from clair_matcher.store._matching import MatchSnapshot

SCHEMA = "matcher"

__all__ = [
    "BATCH_SIZE",
    "GC_THROTTLE",
    "KIND_ENRICHMENT",
    "KIND_VULNERABILITY",
    "SCHEMA",
    "DeltaRecords",
    "EnrichmentRow",
    "IngestResult",
    "LatestRefs",
    "MatchSnapshot",
    "MatcherStore",
    "Refs",
]


class MatcherStore:
    """The matcher's reads, writes and retention over one connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def open(
        cls,
        dsn: str | None,
        *,
        application_name: str,
        migrations: bool,
        key: str | None = None,
        **pool_options: Any,
    ) -> MatcherStore:
        """A store on a pool of its own (`create_pool`'s `pool_options`), the schema migrated
        first when `migrations`; `close` closes the pool. `key`: the config key that gave `dsn`,
        named in errors."""
        if migrations:
            await cls.migrate(dsn, key=key)
        pool = await create_pool(
            dsn, schema=SCHEMA, application_name=application_name, key=key, **pool_options
        )
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @staticmethod
    async def migrate(dsn: str | None, *, key: str | None = None) -> list[int]:
        """Applies the pending migrations of ../migrations; returns their numbers."""
        return await migrate(dsn, SCHEMA, "clair_matcher", key=key)

    # -- update operations -----------------------------------------------------------------
    async def initialized(self) -> bool:
        """Whether any vulnerability is stored yet."""
        return await _operations.initialized(self.pool)

    async def update_operations(
        self, kind: str, *, latest: bool, updaters: Sequence[str] = ()
    ) -> dict[str, list[UpdateOperation]]:
        """Operations of `kind` per updater (all `updaters` when empty), newest first."""
        return await _operations.update_operations(
            self.pool, kind, latest=latest, updaters=updaters
        )

    async def latest_ref(self, kind: str) -> str | None:
        """The ref of the newest operation of `kind` of any updater."""
        return await _operations.latest_ref(self.pool, kind)

    async def latest_refs(self) -> Refs:
        """(kind, updater, ref) of every updater's newest operation, of every kind, sorted."""
        return await _operations.latest_refs(self.pool)

    def held_latest_refs(self) -> LatestRefs:
        """`latest_refs`, held until a notification says they changed (see `_latest`)."""
        return LatestRefs(self.pool, self.latest_refs)

    async def delete_update_operations(self, refs: Sequence[uuid.UUID]) -> int:
        """Deletes the operations; each updater's newest remaining one becomes its latest."""
        return await _operations.delete_update_operations(self.pool, refs)

    async def update_diff(self, prev: uuid.UUID | None, cur: uuid.UUID) -> UpdateDiff | None:
        """Vulnerabilities added and removed from `prev` (None: nothing) to `cur`; None if an
        operation is unknown; ValueError for an operation of another kind."""
        return await _operations.update_diff(self.pool, prev, cur)

    def update_diff_batches(
        self, prev: uuid.UUID | None, cur: uuid.UUID, size: int
    ) -> AsyncIterator[tuple[str, list[Vulnerability]]]:
        """`update_diff`'s ("added" | "removed", vulnerabilities), `size` at a time."""
        return _operations.update_diff_batches(self.pool, prev, cur, size)

    # -- reports ---------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def match_snapshot(self) -> AsyncIterator[MatchSnapshot]:
        """The reads of one report, from one read-only, repeatable-read snapshot."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield MatchSnapshot(conn)

    async def enrichment_records(
        self, updater: str, tags: Sequence[str]
    ) -> list[tuple[list[str], Any]]:
        """(tags, data) of the records of `updater`'s newest enrichment operation sharing a tag
        with `tags`: what an enricher's lookup finds."""
        return await _enrichment.enrichment_records(self.pool, updater, tags)

    # -- updater runs ----------------------------------------------------------------------
    async def update_vulnerabilities(
        self,
        updater: str,
        fingerprint: str,
        vulns: Iterable[Vulnerability] | AsyncIterable[Vulnerability],
        *,
        batch_size: int = BATCH_SIZE,
    ) -> IngestResult:
        """Stores a snapshot as a new operation of `updater`, atomically (`DeltaRecords`: the
        previous operation's other records carry over)."""
        return await _ingest.update_vulnerabilities(
            self.pool, updater, fingerprint, vulns, batch_size=batch_size
        )

    async def update_enrichments(
        self,
        updater: str,
        fingerprint: str,
        records: Iterable[EnrichmentRow] | AsyncIterable[EnrichmentRow],
        *,
        batch_size: int = BATCH_SIZE,
    ) -> IngestResult:
        """Stores an enrichment snapshot as a new operation of kind "enrichment"."""
        return await _ingest.update_enrichments(
            self.pool, updater, fingerprint, records, batch_size=batch_size
        )

    async def latest_fingerprint(self, updater: str, kind: str = KIND_VULNERABILITY) -> str:
        """Fingerprint of the updater's newest operation ("" when it has none)."""
        return await _status.latest_fingerprint(self.pool, updater, kind)

    async def has_fingerprint(self, updater: str, kind: str, fingerprint: str) -> bool:
        """Whether any operation of `updater` and `kind` has `fingerprint`."""
        return await _status.has_fingerprint(self.pool, updater, kind, fingerprint)

    async def record_status(self, updater: str, *, fingerprint: str, error: str | None) -> None:
        """The updater's last attempt, and its last success when `error` is None."""
        await _status.record_status(self.pool, updater, fingerprint=fingerprint, error=error)

    async def status_names_under(self, prefix: str) -> list[str]:
        """Updaters with a status row named `prefix`... (not `prefix` itself)."""
        return await _status.status_names_under(self.pool, prefix)

    # -- retention -------------------------------------------------------------------------
    async def refresh_statistics(self) -> None:
        """VACUUM (ANALYZE) what matching reads, once an update has added rows."""
        await _gc.refresh_statistics(self.pool)

    async def collect_garbage(self, retention: int, throttle: int = GC_THROTTLE) -> int:
        """Keeps the newest `retention` operations per updater and kind (0: all), deleting at
        most `throttle` older ones; returns how many eligible ones remain."""
        return await _gc.collect_garbage(self.pool, retention, throttle)

    async def drop_updater(self, updater: str) -> tuple[int, int]:
        """Deletes all of `updater`'s operations and its rows left unlinked (a feed that is
        gone); returns (operations, vulnerabilities) deleted."""
        return await _gc.drop_updater(self.pool, updater)
