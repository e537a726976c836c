"""STOMP delivery against a real RabbitMQ STOMP listener, read back by a real subscriber."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import orjson
import pytest

from clair_common.config.base import split_host_port
from clair_common.config.notifier import STOMP
from clair_common.db.locks import AdvisoryLocks
from clair_notifier.delivery import DeliveryError, DeliveryLoop
from clair_notifier.delivery.stomp import StompDeliverer
from clair_notifier.delivery.stompclient import Frame, StompClient, read_frame
from clair_notifier.store import NotifierStore
from tests.fixtures.broker import Broker
from tests.fixtures.server import free_port
from tests.notifier.test_api import put_set

CALLBACK = "http://clair.example/notifier/api/v1/notification"


async def connect(broker: Broker, passcode: str | None = None) -> StompClient:
    host, port = split_host_port(broker.stomp_addr)
    return await StompClient.connect(
        host,
        port,
        login=broker.login,
        passcode=broker.passcode if passcode is None else passcode,
    )


@pytest.fixture
def destination() -> str:
    return f"/queue/clair-test-{secrets.token_hex(4)}"


@pytest.fixture
async def subscriber(broker: Broker, destination: str) -> AsyncIterator[StompClient]:
    client = await connect(broker)
    await client.subscribe(destination)  # receipted: subscribed before anything is sent
    try:
        yield client
    finally:
        await client.disconnect()


def stomp(uris: list[str], destination: str, **extra: Any) -> STOMP:
    return STOMP.model_validate(
        {"destination": destination, "callback": CALLBACK, "uris": uris, **extra}
    )


def login(broker: Broker, passcode: str | None = None) -> dict[str, Any]:
    return {"login": broker.login, "passcode": broker.passcode if passcode is None else passcode}


async def nothing_more(subscriber: StompClient) -> None:
    with pytest.raises(DeliveryError, match="no message"):
        await subscriber.receive(wait=0.3)


async def test_callback_mode_sends_id_and_callback(
    store: NotifierStore,
    locks: AdvisoryLocks,
    broker: Broker,
    destination: str,
    subscriber: StompClient,
) -> None:
    set_id, _ = await put_set(store, 3)
    # host:port pairs are tried in order: the dead one first, then the broker.
    uris = [f"127.0.0.1:{free_port()}", broker.stomp_addr]
    loop = DeliveryLoop(store, locks, StompDeliverer(stomp(uris, destination, user=login(broker))))
    try:
        assert (await loop.run_once()).delivered == [str(set_id)]
        message = await subscriber.receive()
        assert orjson.loads(message.body) == {
            "notification_id": str(set_id),
            "callback": f"{CALLBACK}/{set_id}",
        }
        assert message.headers["content-type"] == "application/json"
        assert message.headers["destination"] == destination
        # A callback delivery leaves the set for the subscriber to fetch and delete.
        assert await store.status(set_id) == "delivered"
        await nothing_more(subscriber)
    finally:
        await loop.close()


@pytest.mark.parametrize(("rollup", "sizes"), [(2, [2, 2, 1]), (0, [1] * 5)])
async def test_direct_mode_sends_the_set_in_a_transaction_then_deletes_it(
    store: NotifierStore,
    locks: AdvisoryLocks,
    broker: Broker,
    destination: str,
    subscriber: StompClient,
    rollup: int,
    sizes: list[int],
) -> None:
    set_id, _ = await put_set(store, 5)
    want = await store.notifications(set_id)
    config = stomp([broker.stomp_addr], destination, direct=True, rollup=rollup, user=login(broker))
    loop = DeliveryLoop(store, locks, StompDeliverer(config))
    try:
        assert (await loop.run_once()).delivered == [str(set_id)]
        messages = [await subscriber.receive() for _ in sizes]
        arrays = [orjson.loads(m.body) for m in messages]
        assert [len(a) for a in arrays] == sizes
        assert [n for a in arrays for n in a] == want  # the whole set, in order, once
        assert all(m.headers["content-type"] == "application/json" for m in messages)
        await nothing_more(subscriber)
        assert await store.status(set_id) == "deleted"
    finally:
        await loop.close()


async def test_an_error_in_the_transaction_sends_nothing(
    store: NotifierStore,
    locks: AdvisoryLocks,
    broker: Broker,
    destination: str,
    subscriber: StompClient,
) -> None:
    set_id, _ = await put_set(store, 3)
    # RabbitMQ refuses this destination with an ERROR frame once the SENDs are committed.
    config = stomp([broker.stomp_addr], "/nowhere/x", direct=True, rollup=1, user=login(broker))
    loop = DeliveryLoop(store, locks, StompDeliverer(config))
    try:
        report = await loop.run_once()
        assert "stomp: broker error" in report.failed[str(set_id)]
        assert await store.status(set_id) == "delivery_failed"
        await nothing_more(subscriber)
    finally:
        await loop.close()


async def test_the_login_is_sent(
    store: NotifierStore,
    locks: AdvisoryLocks,
    broker: Broker,
    destination: str,
    subscriber: StompClient,
) -> None:
    """A wrong passcode is refused by the broker, so the configured login is what it checked
    (Clair never sends it, and RabbitMQ would then log in its default user)."""
    set_id, _ = await put_set(store, 1)
    base = timedelta(milliseconds=300)
    config = stomp([broker.stomp_addr], destination, user=login(broker, "not-the-passcode"))
    deliverer = StompDeliverer(config)
    loop = DeliveryLoop(store, locks, deliverer, retry_base=base)
    try:
        report = await loop.run_once()
        failure = report.failed[str(set_id)]
        assert "stomp: broker error" in failure and "not-the-passcode" not in failure
        assert await store.status(set_id) == "delivery_failed"
        assert (await loop.run_once()).failed == {}  # backing off
        await nothing_more(subscriber)
        assert config.user is not None
        config.user.passcode = broker.passcode
        await asyncio.sleep(base.total_seconds() + 0.1)
        assert (await loop.run_once()).delivered == [str(set_id)]
        message = await subscriber.receive()
        assert orjson.loads(message.body)["notification_id"] == str(set_id)
    finally:
        await loop.close()


async def test_unreachable_broker_fails_the_delivery(
    store: NotifierStore, locks: AdvisoryLocks
) -> None:
    set_id, _ = await put_set(store, 1)
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    loop = DeliveryLoop(store, locks, StompDeliverer(stomp(dead, "/queue/x")))
    try:
        report = await loop.run_once()
        assert "stomp: no broker could be reached" in report.failed[str(set_id)]
        assert await store.status(set_id) == "delivery_failed"
    finally:
        await loop.close()


async def test_frames_round_trip_with_escapes() -> None:
    # A header value with a colon, a newline and a backslash; a body with a NUL in it, which
    # content-length makes safe.
    frame = Frame("SEND", {"destination": "/queue/a:b", "x": "line\nbreak\\"}, b"{}\0[]")
    encoded = frame.encode()
    assert b"destination:/queue/a\\cb\n" in encoded and b"x:line\\nbreak\\\\\n" in encoded
    reader = asyncio.StreamReader()
    reader.feed_data(b"\n" + encoded)  # a heart-beat EOL before the frame
    reader.feed_eof()
    got = await read_frame(reader)
    assert got.command == "SEND" and got.body == b"{}\0[]"
    assert got.headers == {**frame.headers, "content-length": "5"}
