"""Starts the indexer service for `clair serve` (entry point `clair.services: indexer`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.middleware import Middleware

from clair_common.config.views import IndexerView
from clair_common.db.locks import AdvisoryLocks
from clair_common.http.limit import ConcurrencyLimitMiddleware
from clair_common.http.routes import Operation
from clair_common.runtime import ServiceContext, close_in_reverse, open_service_pool
from clair_indexer.app import LIMITED_ENDPOINTS, build_operations, limited
from clair_indexer.fetch import FetchPolicy, LayerFetcher
from clair_indexer.host_slots import HostGate, HostQuota
from clair_indexer.scanners import default_scanners
from clair_indexer.service import IndexerService
from clair_indexer.store import IndexerStore

SCHEMA = "indexer"


@dataclass(slots=True)
class RunningIndexer:
    api: IndexerService
    operations: Sequence[Operation]
    middleware: Sequence[Middleware]
    resources: list[Any] = field(default_factory=list)
    name: str = "indexer"

    async def ready(self) -> None:
        return None

    async def close(self) -> None:
        await close_in_reverse(self.resources)


def concurrency_middleware(limit: int | None) -> Middleware:
    """Clair's 429 limit on index requests; None admits everything."""
    return Middleware(
        ConcurrencyLimitMiddleware, limit=limit, applies=limited, endpoints=LIMITED_ENDPOINTS
    )


def _limit(value: int) -> int | None:
    return value if value > 0 else None


async def start(ctx: ServiceContext[IndexerView]) -> RunningIndexer:
    cfg = ctx.config.indexer
    pool = await open_service_pool(ctx, SCHEMA, "clair_indexer", application_name="libindex")
    locks = AdvisoryLocks(ctx.dsn, key=ctx.dsn_key)
    fetcher = LayerFetcher(
        cfg.layer_cache_path,
        max_cache_bytes=cfg.layer_cache_bytes,
        airgap=bool(cfg.airgap),
        max_concurrent=cfg.layer_scan_concurrency,
        deadline=cfg.layer_fetch_timeout.total_seconds() or None,
        min_rate=cfg.layer_min_rate,
        rate_window=cfg.layer_rate_window.total_seconds(),
        policy=FetchPolicy.parse(cfg.layer_fetch_allow, cfg.layer_fetch_deny_internal),
    )
    service = IndexerService(
        IndexerStore(pool),
        locks,
        fetcher,
        default_scanners(cfg.scanner, airgap=bool(cfg.airgap)),
        layer_scan_concurrency=cfg.layer_scan_concurrency,
        max_manifest_layers=cfg.max_manifest_layers,
        host_quota=HostQuota(_limit(cfg.index_report_host_concurrency)),
        host_gate=HostGate(_limit(cfg.layer_host_concurrency)),
    )
    await service.start()
    limit = cfg.index_report_request_concurrency
    middleware = [concurrency_middleware(limit if limit and limit > 0 else None)]
    return RunningIndexer(
        api=service,
        operations=build_operations(service),
        middleware=middleware,
        resources=[pool, locks, fetcher],
    )
