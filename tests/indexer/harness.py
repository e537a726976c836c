"""An in-process indexer over a real database, served through the real API app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from clair_common.db.locks import AdvisoryLocks
from clair_common.db.migrate import migrate
from clair_common.db.pool import create_pool
from clair_common.http.app import build_api_app
from clair_common.models import Manifest
from clair_indexer.app import build_operations
from clair_indexer.entry import concurrency_middleware
from clair_indexer.fetch import LayerFetcher
from clair_indexer.scanners import Scanner, default_scanners
from clair_indexer.service import IndexerService
from clair_indexer.store import IndexerStore


@dataclass
class Indexer:
    service: IndexerService
    client: httpx.AsyncClient
    dsn: str

    async def post(self, manifest: Manifest) -> httpx.Response:
        return await self.client.post(
            "/indexer/api/v1/index_report", json=manifest.to_json(), timeout=120
        )


@asynccontextmanager
async def running_indexer(
    dsn: str,
    cache_dir: Path,
    *,
    request_limit: int | None = None,
    scanners: Sequence[Scanner] | None = None,
) -> AsyncIterator[Indexer]:
    await migrate(dsn, "indexer", "clair_indexer")
    pool = await create_pool(dsn, schema="indexer", application_name="test-indexer")
    locks = AdvisoryLocks(dsn)
    fetcher = LayerFetcher(cache_dir, max_cache_bytes=1 << 30)
    chosen = default_scanners() if scanners is None else scanners
    service = IndexerService(IndexerStore(pool), locks, fetcher, chosen)
    await service.start()
    app = build_api_app(
        build_operations(service), extra_middleware=[concurrency_middleware(request_limit)]
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://indexer") as client:
            yield Indexer(service, client, dsn)
    finally:
        await fetcher.close()
        await locks.close()
        await pool.close()
