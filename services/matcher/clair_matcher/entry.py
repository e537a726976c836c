"""Starts the matcher service for `clair serve` (entry point `clair.services: matcher`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.middleware import Middleware

from clair_common.config.views import MatcherView
from clair_common.db.locks import AdvisoryLocks
from clair_common.db.pool import pool_timeouts
from clair_common.http.routes import Operation
from clair_common.remote import RemoteIndexer
from clair_common.runtime import ServiceContext, close_in_reverse
from clair_common.vulnerable import default_matchers
from clair_matcher.app import build_operations
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.service import MatcherService
from clair_matcher.store import MatcherStore


@dataclass(slots=True)
class RunningMatcher:
    api: MatcherService
    operations: Sequence[Operation]
    middleware: Sequence[Middleware] = ()
    resources: list[Any] = field(default_factory=list)
    name: str = "matcher"
    scheduler: UpdateScheduler | None = None

    async def ready(self) -> None:
        if self.scheduler is not None:
            self.scheduler.start()  # updaters: first run now, then every matcher.period

    async def close(self) -> None:
        await close_in_reverse(self.resources)


async def start(ctx: ServiceContext[MatcherView]) -> RunningMatcher:
    cfg = ctx.config.matcher
    if ctx.indexer is None:
        raise RuntimeError("matcher: no indexer configured (matcher.indexer_addr)")
    store = await MatcherStore.open(
        ctx.dsn,
        key=ctx.dsn_key,
        application_name="libvuln",
        migrations=ctx.migrations,
        **pool_timeouts(ctx.config.shared),
    )
    matchers = default_matchers(ctx.config.matchers.names, ctx.config.matchers.config)
    service = MatcherService(
        store,
        matchers,
        enrichers=() if cfg.disable_enrichment else None,
        indexer=ctx.indexer,
        cache_age=int(cfg.cache_age.total_seconds()),
        report_cache_bytes=cfg.report_cache_bytes,
        candidate_cache_rows=cfg.candidate_cache_rows,
    )
    await service.start()
    locks = AdvisoryLocks(ctx.dsn, key=ctx.dsn_key)
    scheduler = UpdateScheduler.from_config(
        ctx.config, store, locks, on_update=service.refs_changed
    )
    # In matcher mode the indexer is an HTTP client made for this service alone: ours to close
    # (else its session leaks at shutdown). In combo mode it is the indexer service itself.
    peer = [ctx.indexer] if isinstance(ctx.indexer, RemoteIndexer) else []
    return RunningMatcher(
        api=service,
        operations=build_operations(service),
        resources=[*peer, store, service, locks, scheduler],  # closed in reverse: scheduler first
        scheduler=scheduler,
    )
