"""Advisory locks that exclude both other replicas and other tasks of this process.

PostgreSQL session locks are re-entrant for the session holding them, so one connection cannot
tell two local tasks apart: an asyncio lock per key guards the process, the advisory lock on a
single pinned connection guards the cluster (clair-api.md 4.5).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from clair_common.db.pool import connect

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def lock_key(name: str) -> int:
    """FNV-1a 64 of the name as a signed bigint, the key Clair's ctxlock uses."""
    h = _FNV_OFFSET
    for byte in name.encode():
        h ^= byte
        h = (h * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h - (1 << 64) if h >= 1 << 63 else h


class AdvisoryLocks:
    def __init__(self, dsn: str | None, *, key: str | None = None) -> None:
        """`key`: the config key that gave `dsn`, named in connection errors."""
        self._dsn = dsn
        self._key = key or "database.connstring"
        self._conn: asyncpg.Connection | None = None
        self._conn_guard = asyncio.Lock()
        self._local: dict[int, asyncio.Lock] = {}

    async def _query(self, sql: str, key: int) -> bool:
        async with self._conn_guard:
            if self._conn is None or self._conn.is_closed():
                self._conn = await connect(self._dsn, application_name="clair-locks", key=self._key)
            return bool(await self._conn.fetchval(sql, key))

    def _local_lock(self, key: int) -> asyncio.Lock:
        lock = self._local.get(key)
        if lock is None:
            lock = self._local[key] = asyncio.Lock()
        return lock

    async def _release(self, key: int, local: asyncio.Lock) -> None:
        try:
            await self._query("SELECT pg_advisory_unlock($1)", key)
        finally:
            local.release()
            if not local.locked() and not getattr(local, "_waiters", None):
                self._local.pop(key, None)

    @asynccontextmanager
    async def try_hold(self, name: str) -> AsyncIterator[bool]:
        """Yields whether the lock was taken; never waits."""
        key = lock_key(name)
        local = self._local_lock(key)
        if local.locked():
            yield False
            return
        await local.acquire()
        if not await self._query("SELECT pg_try_advisory_lock($1)", key):
            local.release()
            yield False
            return
        try:
            yield True
        finally:
            await self._release(key, local)

    @asynccontextmanager
    async def hold(self, name: str, *, max_backoff: float = 10.0) -> AsyncIterator[None]:
        """Waits for the lock, backing off from 0.05 s doubling up to `max_backoff`."""
        key = lock_key(name)
        local = self._local_lock(key)
        await local.acquire()
        delay = 0.05
        try:
            while not await self._query("SELECT pg_try_advisory_lock($1)", key):
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_backoff)
        except BaseException:
            local.release()
            raise
        try:
            yield
        finally:
            await self._release(key, local)

    async def close(self) -> None:
        async with self._conn_guard:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
