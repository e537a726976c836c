"""Start-up: the notifier runs with the configured mechanism (webhook > AMQP > STOMP)."""

from __future__ import annotations

from typing import Any

import pytest

from clair_common.config import validate_document
from clair_common.server import services_for, start_services
from clair_notifier.delivery.amqp import AMQPDeliverer
from clair_notifier.delivery.stomp import StompDeliverer
from clair_notifier.delivery.webhook import WebhookDeliverer
from clair_notifier.entry import RunningNotifier

AMQP = {
    "exchange": {"name": "", "type": "direct"},
    "routing_key": "notifications",
    "uris": ["amqp://127.0.0.1:5672/"],
}
STOMP = {"destination": "notifications", "uris": ["127.0.0.1:61613"]}


def config(notifier: dict[str, Any]) -> Any:
    return validate_document({"notifier": notifier, "updaters": {"sets": []}}, "test")


@pytest.mark.parametrize(
    ("key", "section", "kind"), [("amqp", AMQP, AMQPDeliverer), ("stomp", STOMP, StompDeliverer)]
)
async def test_queue_delivery_starts_and_stops(
    pg_dsn: str, key: str, section: dict[str, Any], kind: type
) -> None:
    # Start-up does not dial the broker (none listens on these ports): delivery ticks do.
    cfg = config({key: section})
    assert "notifier" in services_for("combo", cfg)
    names = ("indexer", "matcher", "notifier")
    services = await start_services(
        "combo", cfg, dict.fromkeys(names, pg_dsn), dict.fromkeys(names, True)
    )
    try:
        notifier = services[-1]
        assert isinstance(notifier, RunningNotifier)
        assert isinstance(notifier.delivery.deliverer, kind)
        await notifier.ready()
    finally:
        for service in reversed(services):
            await service.close()


async def test_webhook_notifier_starts_and_stops(pg_dsn: str) -> None:
    cfg = config({"webhook": {"target": "http://127.0.0.1:9/hook"}, "amqp": AMQP})
    names = ("indexer", "matcher", "notifier")
    services = await start_services(
        "combo", cfg, dict.fromkeys(names, pg_dsn), dict.fromkeys(names, True)
    )
    try:
        assert [s.name for s in services] == ["indexer", "matcher", "notifier"]
        paths = {(op.method, op.path) for op in services[-1].operations}
        assert paths == {
            ("GET", "/notifier/api/v1/notification/{id}"),
            ("DELETE", "/notifier/api/v1/notification/{id}"),
        }
        notifier = services[-1]
        assert isinstance(notifier, RunningNotifier)
        assert isinstance(notifier.delivery.deliverer, WebhookDeliverer)  # webhook wins
        await notifier.ready()  # loops start; close() must stop them
    finally:
        for service in reversed(services):
            await service.close()
