from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from clair_common.db.locks import AdvisoryLocks
from clair_common.db.migrate import migrate
from clair_common.db.pool import create_pool
from clair_notifier.store import NotifierStore
from tests.notifier.receiver import WebhookReceiver


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[NotifierStore]:
    await migrate(pg_dsn, "notifier", "clair_notifier")
    pool: asyncpg.Pool = await create_pool(pg_dsn, schema="notifier", application_name="test")
    try:
        yield NotifierStore(pool)
    finally:
        await pool.close()


@pytest.fixture
async def locks(pg_dsn: str) -> AsyncIterator[AdvisoryLocks]:
    held = AdvisoryLocks(pg_dsn)
    try:
        yield held
    finally:
        await held.close()
