"""AMQP delivery against a real RabbitMQ broker, read back by a real aio-pika consumer."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

from clair_common.config.notifier import AMQP
from clair_common.db.locks import AdvisoryLocks
from clair_notifier.delivery import DeliveryLoop
from clair_notifier.delivery.amqp import AMQPDeliverer
from clair_notifier.store import NotifierStore
from tests.fixtures.broker import Broker
from tests.fixtures.server import free_port
from tests.notifier.test_api import put_set

CALLBACK = "http://clair.example/notifier/api/v1/notification"
ROUTING_KEY = "clair.notifications"


@dataclass
class Consumer:
    exchange: str
    queue: AbstractQueue

    async def take(self, count: int, within: float = 10) -> list[AbstractIncomingMessage]:
        """Exactly `count` messages: waits for them, then checks no more came."""
        got: list[AbstractIncomingMessage] = []
        deadline = asyncio.get_running_loop().time() + within
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            message = await self.queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
            else:
                got.append(message)
        await asyncio.sleep(0.2)
        assert await self.queue.get(no_ack=True, fail=False) is None, "more messages than sent"
        assert len(got) == count
        return got


@pytest.fixture
async def subscriber(broker: Broker) -> AsyncIterator[AbstractConnection]:
    connection = await aio_pika.connect(broker.amqp_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def consumer(subscriber: AbstractConnection) -> Consumer:
    """A subscriber's exchange (a fresh name per test) and its queue bound with the key."""
    channel = await subscriber.channel()
    name = f"clair-test-{secrets.token_hex(4)}"
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT, auto_delete=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, ROUTING_KEY)
    return Consumer(name, queue)


def amqp(uris: list[str], exchange: str, **extra: Any) -> AMQP:
    return AMQP.model_validate(
        {
            "exchange": {"name": exchange, "type": "direct"},
            "routing_key": ROUTING_KEY,
            "callback": CALLBACK,
            "uris": uris,
            **extra,
        }
    )


def dead_uri() -> str:
    return f"amqp://guest:guest@127.0.0.1:{free_port()}/"  # nobody listens there


async def test_callback_mode_publishes_id_and_callback(
    store: NotifierStore, locks: AdvisoryLocks, broker: Broker, consumer: Consumer
) -> None:
    set_id, _ = await put_set(store, 3)
    # URIs are tried in order: the dead one first, then the broker.
    deliverer = AMQPDeliverer(amqp([dead_uri(), broker.amqp_url], consumer.exchange))
    loop = DeliveryLoop(store, locks, deliverer)
    try:
        report = await loop.run_once()
        assert report.delivered == [str(set_id)] and not report.failed
        (message,) = await consumer.take(1)
        assert orjson.loads(message.body) == {
            "notification_id": str(set_id),
            "callback": f"{CALLBACK}/{set_id}",
        }
        assert message.content_type == "application/json"
        assert message.app_id == "clairV4-notifier"
        assert message.routing_key == ROUTING_KEY and message.exchange == consumer.exchange
        # A callback delivery leaves the set for the subscriber to fetch and delete.
        assert await store.status(set_id) == "delivered"
        # The connection is kept for the next set.
        first = deliverer._connection
        other_id, _ = await put_set(store, 1)
        assert (await loop.run_once()).delivered == [str(other_id)]
        assert deliverer._connection is first
        (message,) = await consumer.take(1)
        assert orjson.loads(message.body)["notification_id"] == str(other_id)
    finally:
        await loop.close()


@pytest.mark.parametrize(("rollup", "sizes"), [(2, [2, 2, 1]), (0, [1] * 5), (1, [1] * 5)])
async def test_direct_mode_sends_the_set_rolled_up_then_deletes_it(
    store: NotifierStore,
    locks: AdvisoryLocks,
    broker: Broker,
    consumer: Consumer,
    rollup: int,
    sizes: list[int],
) -> None:
    set_id, items = await put_set(store, 5)
    want = await store.notifications(set_id)
    assert sorted(n["id"] for n in want) == sorted(str(b.id) for b in items)
    config = amqp([broker.amqp_url], consumer.exchange, direct=True, rollup=rollup)
    loop = DeliveryLoop(store, locks, AMQPDeliverer(config))
    try:
        assert (await loop.run_once()).delivered == [str(set_id)]
        messages = await consumer.take(len(sizes))
        arrays = [orjson.loads(m.body) for m in messages]
        assert [len(a) for a in arrays] == sizes
        assert [n for a in arrays for n in a] == want  # the whole set, in order, once
        assert all(m.content_type == "application/json" for m in messages)
        assert all(m.app_id == "clairV4-notifier" for m in messages)
        # The subscriber has it all: Clair marks the set delivered, then deleted at once.
        assert await store.status(set_id) == "deleted"
        assert (await loop.run_once()).delivered == []
    finally:
        await loop.close()


async def test_default_exchange_routes_by_queue_name(
    store: NotifierStore, locks: AdvisoryLocks, broker: Broker, subscriber: AbstractConnection
) -> None:
    channel = await subscriber.channel()
    queue = await channel.declare_queue(exclusive=True)
    config = AMQP.model_validate(
        {
            "exchange": {"name": "", "type": "direct"},
            "routing_key": queue.name,
            "callback": CALLBACK,
            "uris": [broker.amqp_url],
        }
    )
    set_id, _ = await put_set(store, 1)
    loop = DeliveryLoop(store, locks, AMQPDeliverer(config))
    try:
        assert (await loop.run_once()).delivered == [str(set_id)]
        (message,) = await Consumer("", queue).take(1)
        assert orjson.loads(message.body)["notification_id"] == str(set_id)
    finally:
        await loop.close()


async def test_unknown_exchange_fails_and_backs_off(
    store: NotifierStore, locks: AdvisoryLocks, broker: Broker, consumer: Consumer
) -> None:
    set_id, _ = await put_set(store, 2)
    base = timedelta(milliseconds=300)
    missing = f"clair-missing-{secrets.token_hex(4)}"
    deliverer = AMQPDeliverer(amqp([broker.amqp_url], missing, direct=True, rollup=1))
    loop = DeliveryLoop(store, locks, deliverer, retry_base=base)
    try:
        report = await loop.run_once()
        assert list(report.failed) == [str(set_id)]
        assert "NOT_FOUND" in report.failed[str(set_id)]  # the passive declare's 404
        assert await store.status(set_id) == "delivery_failed"
        assert (await loop.run_once()).failed == {}  # backing off
        await asyncio.sleep(base.total_seconds() + 0.1)
        assert list((await loop.run_once()).failed) == [str(set_id)]
        attempts, wait = await store.pool.fetchrow(
            "SELECT attempts, retry_at - ts FROM receipt WHERE notification_id = $1", set_id
        )
        assert attempts == 2 and wait == 2 * base
        # The subscriber declares its exchange: the next attempt goes through, on the same
        # connection (a failed passive declare closes the channel, not the connection).
        deliverer.config.exchange.name = consumer.exchange
        await asyncio.sleep(2 * base.total_seconds() + 0.1)
        assert (await loop.run_once()).delivered == [str(set_id)]
        assert len(await consumer.take(2)) == 2
        assert await store.status(set_id) == "deleted"
    finally:
        await loop.close()


async def test_unreachable_broker_fails_the_delivery(
    store: NotifierStore, locks: AdvisoryLocks
) -> None:
    set_id, _ = await put_set(store, 1)
    loop = DeliveryLoop(store, locks, AMQPDeliverer(amqp([dead_uri(), dead_uri()], "x")))
    try:
        report = await loop.run_once()
        assert "no broker could be reached" in report.failed[str(set_id)]
        assert "guest:***@" in report.failed[str(set_id)]  # no password in the receipt
        assert await store.status(set_id) == "delivery_failed"
        details = await store.pool.fetchval(
            "SELECT details FROM receipt WHERE notification_id = $1", set_id
        )
        assert "no broker could be reached" in details["error"]
    finally:
        await loop.close()
