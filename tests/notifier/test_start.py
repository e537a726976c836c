"""Start-up: the webhook notifier runs; AMQP and STOMP stop start-up naming their key."""

from __future__ import annotations

from typing import Any

import pytest

from clair_common.config import ConfigError, validate_document
from clair_common.server import services_for, start_services

AMQP = {
    "exchange": {"name": "", "type": "direct"},
    "routing_key": "notifications",
    "uris": ["amqp://127.0.0.1:5672/"],
}
STOMP = {"destination": "notifications", "uris": ["127.0.0.1:61613"]}


def config(notifier: dict[str, Any]) -> Any:
    return validate_document({"notifier": notifier, "updaters": {"sets": []}}, "test")


@pytest.mark.parametrize(("key", "section"), [("amqp", AMQP), ("stomp", STOMP)])
async def test_unsupported_delivery_fails_start_up(
    pg_dsn: str, key: str, section: dict[str, Any]
) -> None:
    cfg = config({key: section})
    assert "notifier" in services_for("combo", cfg)
    names = ("indexer", "matcher", "notifier")
    with pytest.raises(ConfigError, match=rf"^notifier\.{key}: not supported yet"):
        await start_services("combo", cfg, dict.fromkeys(names, pg_dsn), dict.fromkeys(names, True))


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
        await services[-1].ready()  # loops start; close() must stop them
    finally:
        for service in reversed(services):
            await service.close()
