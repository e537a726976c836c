"""Webhook delivery against a real subscriber on 127.0.0.1, receipts in a real PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import jwt

from clair_common.config.notifier import Webhook
from clair_common.db.locks import AdvisoryLocks
from clair_notifier.delivery import DeliveryLoop
from clair_notifier.delivery.webhook import WebhookDeliverer
from clair_notifier.store import NotifierStore
from tests.notifier.receiver import WebhookReceiver
from tests.notifier.test_api import put_set

CALLBACK = "http://clair.example/notifier/api/v1/notification"
PSK = b"a shared secret, 32 bytes or more"


def webhook(target: str) -> Webhook:
    return Webhook.model_validate(
        {"target": target, "callback": CALLBACK, "headers": {"X-Tenant": ["a", "b"]}}
    )


async def test_webhook_posts_id_and_callback(
    store: NotifierStore, locks: AdvisoryLocks, receiver: WebhookReceiver
) -> None:
    set_id, _ = await put_set(store, 2)
    loop = DeliveryLoop(store, locks, WebhookDeliverer(webhook(receiver.url), PSK))
    try:
        report = await loop.run_once()
        assert report.delivered == [str(set_id)] and not report.failed
        (delivery,) = receiver.deliveries
        assert delivery.body == {
            "notification_id": str(set_id),
            "callback": f"{CALLBACK}/{set_id}",
        }
        assert delivery.headers["content-type"] == ["application/json"]
        assert delivery.headers["x-tenant"] == ["a", "b"]
        scheme, token = delivery.headers["authorization"][0].split(" ")
        claims = jwt.decode(token, PSK, algorithms=["HS256"])
        assert scheme == "Bearer" and claims["iss"] == "clair-notifier"
        assert await store.status(set_id) == "delivered"
        # Delivered sets are not sent again.
        assert (await loop.run_once()).delivered == []
        assert len(receiver.deliveries) == 1
    finally:
        await loop.close()


async def test_any_2xx_counts_and_failures_back_off(
    store: NotifierStore, locks: AdvisoryLocks, receiver: WebhookReceiver
) -> None:
    set_id, _ = await put_set(store, 1)
    base = timedelta(milliseconds=300)
    loop = DeliveryLoop(store, locks, WebhookDeliverer(webhook(receiver.url)), retry_base=base)
    try:
        receiver.status = 503
        report = await loop.run_once()
        assert list(report.failed) == [str(set_id)] and "HTTP 503" in report.failed[str(set_id)]
        assert await store.status(set_id) == "delivery_failed"
        # Not retried before its backoff is over, however often the loop ticks.
        assert (await loop.run_once()).failed == {}
        assert len(receiver.deliveries) == 1
        await asyncio.sleep(base.total_seconds() + 0.1)
        assert list((await loop.run_once()).failed) == [str(set_id)]
        attempts, wait, details = await store.pool.fetchrow(
            "SELECT attempts, retry_at - ts, details FROM receipt WHERE notification_id = $1",
            set_id,
        )
        assert attempts == 2 and wait == 2 * base  # doubled after the second failure
        assert "HTTP 503" in details["error"]
        await asyncio.sleep(2 * base.total_seconds() + 0.1)
        receiver.status = 204  # any 2xx is a delivery (Clair took only 200)
        assert (await loop.run_once()).delivered == [str(set_id)]
        assert await store.status(set_id) == "delivered"
        assert len(receiver.deliveries) == 3
        assert "authorization" not in receiver.deliveries[-1].headers  # no PSK, no token
    finally:
        await loop.close()


async def test_backoff_is_capped(store: NotifierStore) -> None:
    set_id, _ = await put_set(store, 1)
    base, cap = timedelta(seconds=5), timedelta(minutes=1)
    for _ in range(8):
        await store.delivery_failed(set_id, "down", base, cap)
    wait = await store.pool.fetchval(
        "SELECT retry_at - ts FROM receipt WHERE notification_id = $1", set_id
    )
    assert wait == cap


async def test_unreachable_subscriber_fails_the_delivery(
    store: NotifierStore, locks: AdvisoryLocks
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    set_id, _ = await put_set(store, 1)
    loop = DeliveryLoop(store, locks, WebhookDeliverer(webhook(f"http://127.0.0.1:{port}/")))
    try:
        report = await loop.run_once()
        assert list(report.failed) == [str(set_id)]
        assert await store.status(set_id) == "delivery_failed"
    finally:
        await loop.close()


async def test_a_set_held_by_another_replica_is_skipped(
    store: NotifierStore, locks: AdvisoryLocks, receiver: WebhookReceiver, pg_dsn: str
) -> None:
    set_id, _ = await put_set(store, 1)
    other = AdvisoryLocks(pg_dsn)  # a second process's lock connection
    loop = DeliveryLoop(store, locks, WebhookDeliverer(webhook(receiver.url)))
    try:
        async with other.try_hold(str(set_id)) as held:
            assert held
            assert (await loop.run_once()).skipped == [str(set_id)]
        assert receiver.deliveries == []
        assert (await loop.run_once()).delivered == [str(set_id)]
    finally:
        await loop.close()
        await other.close()
