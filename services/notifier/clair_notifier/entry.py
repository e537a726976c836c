"""Starts the notifier service for `clair serve` (entry point `clair.services: notifier`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.middleware import Middleware

from clair_common.config import ConfigError
from clair_common.config.notifier import Notifier
from clair_common.config.views import NotifierView
from clair_common.db.locks import AdvisoryLocks
from clair_common.http.routes import Operation
from clair_common.remote import RemoteIndexer, RemoteMatcher
from clair_common.runtime import ServiceContext, close_in_reverse, open_service_pool
from clair_notifier.app import build_operations
from clair_notifier.delivery import Deliverer, DeliveryLoop
from clair_notifier.delivery.amqp import AMQPDeliverer
from clair_notifier.delivery.stomp import StompDeliverer
from clair_notifier.delivery.webhook import WebhookDeliverer
from clair_notifier.poller import Poller
from clair_notifier.schedule import Loops
from clair_notifier.service import NotifierService
from clair_notifier.store import NotifierStore

SCHEMA = "notifier"


@dataclass(slots=True)
class RunningNotifier:
    api: NotifierService
    operations: Sequence[Operation]
    loops: Loops
    middleware: Sequence[Middleware] = ()
    resources: list[Any] = field(default_factory=list)
    name: str = "notifier"

    @property
    def poller(self) -> Poller:
        return self.loops.poller

    @property
    def delivery(self) -> DeliveryLoop:
        return self.loops.delivery

    async def ready(self) -> None:
        self.loops.start()  # deliveries at once, the first poll one interval from now

    async def close(self) -> None:
        await close_in_reverse(self.resources)


async def start(ctx: ServiceContext[NotifierView]) -> RunningNotifier:
    cfg = ctx.config.notifier
    auth = ctx.config.shared.auth
    psk = auth.psk.key_bytes if auth.psk else None
    deliverer = _deliverer(cfg, psk)
    if ctx.indexer is None or ctx.matcher is None:
        raise RuntimeError("notifier: no indexer or matcher (notifier.indexer_addr/matcher_addr)")
    pool = await open_service_pool(ctx, SCHEMA, "clair_notifier", application_name="notifier")
    store = NotifierStore(pool)
    locks = AdvisoryLocks(ctx.dsn, key=ctx.dsn_key)
    poller = Poller(store, locks, ctx.matcher, ctx.indexer, summary=not cfg.disable_summary)
    delivery = DeliveryLoop(store, locks, deliverer, retry_base=cfg.delivery_interval)
    loops = Loops(
        poller,
        delivery,
        store,
        poll_interval=cfg.poll_interval,
        delivery_interval=cfg.delivery_interval,
    )
    # In notifier mode the peers are HTTP clients made for this service alone: ours to close.
    # In combo mode they are the other services themselves.
    peers = [p for p in (ctx.indexer, ctx.matcher) if isinstance(p, RemoteIndexer | RemoteMatcher)]
    service = NotifierService(store)
    return RunningNotifier(
        api=service,
        operations=build_operations(service),
        loops=loops,
        resources=[*peers, pool, locks, delivery, loops],  # closed in reverse: the loops first
    )


def _deliverer(cfg: Notifier, psk: bytes | None) -> Deliverer:
    """The one mechanism configured (Clair's precedence: webhook, AMQP, STOMP)."""
    if cfg.webhook is not None:
        return WebhookDeliverer(cfg.webhook, psk)
    if cfg.amqp is not None:
        return AMQPDeliverer(cfg.amqp)
    if cfg.stomp is not None:
        return StompDeliverer(cfg.stomp)
    raise ConfigError("notifier: no delivery mechanism configured (webhook, amqp or stomp)")
