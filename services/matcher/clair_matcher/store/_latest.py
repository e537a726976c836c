"""Each updater's newest operation refs, held between updates.

Every report reads them (its ETag and its candidates depend on them), and they change only when
an update operation lands: a query per report was a seventh of a cached report's cost. A
trigger (migration 003) notifies `clair_matcher_latest` whenever they change; one pooled
connection listens, and a notification drops what is held. Without a listening connection
(the pool too small to spare one, or the connection lost) every call asks the database, as
before, and listening is tried again at most every RETRY seconds.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

log = logging.getLogger("clair.matcher.latest")

CHANNEL = "clair_matcher_latest"
RETRY = 5.0

Refs = list[tuple[str, str, str]]  # (kind, updater, ref)


class LatestRefs:
    def __init__(self, pool: asyncpg.Pool, query: Callable[[], Awaitable[Refs]]) -> None:
        self._pool = pool
        self._query = query
        self._conn: Any = None  # the pooled connection that listens (asyncpg's proxy type)
        self._held: Refs | None = None
        self._changes = 0  # notifications seen: a query overlapping one is not held
        self._next_try = float("inf")  # no listening before start() nor after close()
        self._broken = False  # the listening connection was lost

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._broken

    async def start(self) -> None:
        self._next_try = time.monotonic() + RETRY
        if self._pool.get_max_size() < 2:
            return  # the only connection is for queries
        conn = None
        try:
            conn = await self._pool.acquire()
            await conn.add_listener(CHANNEL, self._changed)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            log.warning("matcher: not listening for update notifications: %s", err)
            if conn is not None:
                await self._pool.release(conn)
            return
        conn.add_termination_listener(self._lost)
        self._conn, self._broken = conn, False

    async def close(self) -> None:
        self._next_try = float("inf")
        await self._release()

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        self._changed()
        if conn is None:
            return
        # A lost connection may have been handed back to the pool already (asyncpg detaches
        # its proxy): nothing left to undo then.
        with contextlib.suppress(asyncpg.InterfaceError):
            if not self._broken:
                await conn.remove_listener(CHANNEL, self._changed)
            await self._pool.release(conn)

    async def get(self) -> Refs:
        if self._conn is not None and self._broken:
            await self._release()  # lost: listen again after a while
        if self._conn is None and time.monotonic() >= self._next_try:
            await self.start()
        if self.listening and self._held is not None:
            return self._held
        changes = self._changes
        refs = await self._query()
        if self.listening and changes == self._changes:
            self._held = refs
        return refs

    def changed(self) -> None:
        """Drop what is held: this process changed the refs (its notification may come after
        its own next report)."""
        self._changes += 1
        self._held = None

    def _changed(self, *_: object) -> None:
        self.changed()

    def _lost(self, _conn: object) -> None:
        log.warning("matcher: lost the connection listening for update notifications")
        self._broken = True
        self._changed()
