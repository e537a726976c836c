"""AMQP and STOMP brokers down for a while and back, hung, and cutting the connection in the
middle of a publish: every set made meanwhile reaches the subscriber, at least once and in
the order made, and a set counts as delivered only once the broker confirmed it.

Real parts: the session's RabbitMQ (AMQP 0-9-1 and its STOMP plugin) behind a TCP proxy the
test cuts (tests/fixtures/cut_proxy.py); the subscriber reads straight from the broker;
receipts live in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import orjson
import pytest

from clair_common.config.base import split_host_port
from clair_common.config.notifier import AMQP, STOMP
from clair_common.db.locks import AdvisoryLocks
from clair_notifier.delivery import Deliverer, DeliveryLoop
from clair_notifier.delivery.amqp import AMQPDeliverer
from clair_notifier.delivery.stomp import StompDeliverer
from clair_notifier.delivery.stompclient import StompClient, read_frame
from clair_notifier.store import NotifierStore
from tests.fixtures.broker import Broker
from tests.fixtures.cut_proxy import CutProxy, cut_proxy
from tests.notifier.faults import attempts, attempts_allowed, delivery_log, ticking, until
from tests.notifier.test_api import put_set

CALLBACK = "http://clair/notifier/api/v1/notification/"
ROUTING_KEY = "clair.notifications"
BASE, CAP = timedelta(milliseconds=200), timedelta(seconds=1)
TIMEOUT = 0.5  # the deliverer's: a hung broker costs half a second per attempt


@dataclass
class Subscriber:
    """What reached the subscriber's queue, in arrival order (JSON bodies)."""

    bodies: list[Any] = field(default_factory=list)

    def set_ids(self) -> list[str]:
        """Callback mode: the set ids in the order they came."""
        return [b["notification_id"] for b in self.bodies]

    def notification_ids(self) -> list[str]:
        """Direct mode: the notification ids in the order they came."""
        return [n["id"] for b in self.bodies for n in b]


@dataclass
class Setup:
    proxy: CutProxy
    subscriber: Subscriber
    # (direct, rollup) → a deliverer dialing the proxy
    deliverer: Callable[[bool, int], Deliverer]


@asynccontextmanager
async def amqp_setup(broker: Broker) -> AsyncIterator[Setup]:
    url = urlsplit(broker.amqp_url)
    subscriber = Subscriber()
    connection = await aio_pika.connect(broker.amqp_url)
    try:
        channel = await connection.channel()
        name = f"clair-test-{secrets.token_hex(4)}"
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, ROUTING_KEY)

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            subscriber.bodies.append(orjson.loads(message.body))

        await queue.consume(take, no_ack=True)
        async with cut_proxy(url.hostname or "127.0.0.1", url.port or 5672) as proxy:
            netloc = f"{url.username}:{url.password}@{proxy.addr}"

            def deliverer(direct: bool, rollup: int = 2) -> Deliverer:
                config = AMQP.model_validate(
                    {
                        "exchange": {"name": name, "type": "direct"},
                        "routing_key": ROUTING_KEY,
                        "callback": CALLBACK,
                        "uris": [url._replace(netloc=netloc).geturl()],
                        "direct": direct,
                        "rollup": rollup,
                    }
                )
                return AMQPDeliverer(config, timeout=TIMEOUT)

            yield Setup(proxy, subscriber, deliverer)
        await exchange.delete()
    finally:
        await connection.close()


@asynccontextmanager
async def stomp_setup(broker: Broker) -> AsyncIterator[Setup]:
    host, port = split_host_port(broker.stomp_addr)
    destination = f"/queue/clair-test-{secrets.token_hex(4)}"
    subscriber = Subscriber()
    client = await StompClient.connect(
        host or "127.0.0.1", port, login=broker.login, passcode=broker.passcode
    )
    await client.subscribe(destination)  # receipted: subscribed before anything is sent

    async def read() -> None:
        while True:
            frame = await read_frame(client.reader)
            if frame.command == "MESSAGE":
                subscriber.bodies.append(orjson.loads(frame.body))

    reader = asyncio.create_task(read())
    try:
        async with cut_proxy(host or "127.0.0.1", port) as proxy:

            def deliverer(direct: bool, rollup: int = 2) -> Deliverer:
                config = STOMP.model_validate(
                    {
                        "destination": destination,
                        "callback": CALLBACK,
                        "uris": [proxy.addr],
                        "direct": direct,
                        "rollup": rollup,
                        "user": {"login": broker.login, "passcode": broker.passcode},
                    }
                )
                return StompDeliverer(config, timeout=TIMEOUT)

            yield Setup(proxy, subscriber, deliverer)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await client.close()


SETUPS: dict[str, Callable[[Broker], contextlib.AbstractAsyncContextManager[Setup]]] = {
    "amqp": amqp_setup,
    "stomp": stomp_setup,
}


@pytest.fixture(params=sorted(SETUPS))
async def setup(request: pytest.FixtureRequest, broker: Broker) -> AsyncIterator[Setup]:
    async with SETUPS[request.param](broker) as made:
        yield made


def first_seen(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


@pytest.mark.parametrize("direct", [False, True], ids=["callback", "direct"])
async def test_broker_hung_then_down_then_back_gets_every_set_in_order(
    store: NotifierStore,
    locks: AdvisoryLocks,
    setup: Setup,
    caplog: pytest.LogCaptureFixture,
    direct: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy, subscriber = setup.proxy, setup.subscriber
    deliverer = setup.deliverer(direct, 2)
    loop = DeliveryLoop(store, locks, deliverer, retry_base=BASE, retry_cap=CAP)
    made: list[uuid.UUID] = []
    set_of: dict[str, str] = {}  # notification id → its set's

    async def make() -> None:
        set_id, items = await put_set(store, 3)
        made.append(set_id)
        set_of.update((str(b.id), str(set_id)) for b in items)

    def received() -> list[str]:
        """The sets the subscriber heard of, in the order it did (repeats included)."""
        if not direct:
            return subscriber.set_ids()
        return [set_of[n] for n in subscriber.notification_ids()]

    def failed(times: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await attempts(store, made) >= times

        return check

    try:
        async with ticking(loop) as ticker:
            await make()  # delivered while all is well (AMQP keeps that connection)
            await until("the first set delivered", lambda: len(received()) > 0, ticker)
            started = asyncio.get_running_loop().time()
            proxy.stall()  # hung: every byte held, either way
            await make()
            await until("two attempts on the hung broker", failed(2), ticker)
            await proxy.refuse()  # down: connections reset, new ones refused
            await make()
            await until("three refused attempts", failed(5), ticker)
            await make()
            outage = asyncio.get_running_loop().time() - started
            await proxy.accept()
            await until("every set delivered", lambda: len(set(received())) == 4, ticker)
    finally:
        await loop.close()

    want = [str(s) for s in made]
    assert sorted(set(received())) == sorted(want)
    assert first_seen(received()) == want
    if direct:  # each set whole, in id order, sent once (no attempt got to a commit)
        await until("every notification received", lambda: len(received()) == 12)
        assert subscriber.notification_ids() == sorted(
            set_of, key=lambda n: (want.index(set_of[n]), n)
        )
    status = "deleted" if direct else "delivered"
    assert [await store.status(s) for s in made] == [status] * 4
    failures = await attempts(store, made)
    assert 5 <= failures <= attempts_allowed(outage, BASE, CAP) + 1, failures
    # One line per change of state (hung, the connection lost, refused, back), not one
    # per attempt; no traceback, nor a library's line per attempt.
    lines = delivery_log(caplog.records)
    assert 3 <= len(lines) <= 4 < failures, (lines, failures)
    assert "recovered" in lines[-1]


@pytest.mark.parametrize("direct", [False, True], ids=["callback", "direct"])
@pytest.mark.parametrize("forward", [False, True], ids=["before-broker", "after-broker"])
async def test_connection_cut_mid_publish_is_not_a_delivery(
    store: NotifierStore,
    locks: AdvisoryLocks,
    setup: Setup,
    direct: bool,
    forward: bool,
) -> None:
    """The connection is cut as the set is published: before the broker got it, or after,
    its confirm (AMQP) or receipt (STOMP) never reaching the notifier. Either way the set is
    not delivered yet; it is sent again, so the subscriber has it at least once."""
    proxy, subscriber = setup.proxy, setup.subscriber
    loop = DeliveryLoop(store, locks, setup.deliverer(direct, 2), retry_base=BASE, retry_cap=CAP)
    set_id, items = await put_set(store, 3)
    # The last notification goes in the last message: the cut comes after all the rest.
    marker = str(set_id) if not direct else max(str(b.id) for b in items)
    proxy.cut_at(marker.encode(), forward=forward)
    try:
        report = await loop.run_once()
        assert proxy.cut_done.is_set()
        assert list(report.failed) == [str(set_id)], report
        assert await store.status(set_id) == "delivery_failed"

        async def done() -> bool:
            return await store.status(set_id) not in ("created", "delivery_failed")

        async with ticking(loop) as ticker:
            await until("the set delivered", done, ticker)
    finally:
        await loop.close()
    assert await store.status(set_id) == ("deleted" if direct else "delivered")
    want = sorted(str(b.id) for b in items)
    if direct:
        await until("the set received", lambda: set(subscriber.notification_ids()) >= set(want))
    else:
        await until("the set received", lambda: str(set_id) in subscriber.set_ids())
    if direct:
        got = subscriber.notification_ids()
        assert sorted(set(got)) == want  # all of the set, some perhaps twice
        assert got[-len(want) :] == want  # the last send whole and in order
    else:
        assert set(subscriber.set_ids()) == {str(set_id)}


async def test_broker_freezing_mid_set_fails_the_attempt_then_delivers_it_whole(
    store: NotifierStore, locks: AdvisoryLocks, setup: Setup
) -> None:
    """Direct mode, a set of several MiB (more than the socket buffers hold), the broker
    freezing once the set is part sent: the attempt fails within the deliverer's timeout
    rather than waiting on the broker forever, and once the broker is back the set arrives
    whole and once (the first attempt's transaction was never committed)."""
    proxy, subscriber = setup.proxy, setup.subscriber
    deliverer = setup.deliverer(True, 100)  # 200 messages of ~38 KB
    loop = DeliveryLoop(store, locks, deliverer, retry_base=BASE, retry_cap=CAP)
    set_id, items = await put_set(store, 20_000)
    want = sorted(str(b.id) for b in items)
    proxy.stall_at(want[200].encode())
    try:
        async with asyncio.timeout(30):  # the defect was a wait without end
            report = await loop.run_once()
        assert list(report.failed) == [str(set_id)], report
        assert await store.status(set_id) == "delivery_failed"
        await proxy.accept()

        async def done() -> bool:
            return await store.status(set_id) == "deleted"

        async with ticking(loop) as ticker:
            await until("the set delivered", done, ticker, within=60)
    finally:
        await loop.close()
    await until("the set received", lambda: len(subscriber.notification_ids()) >= len(want))
    await asyncio.sleep(0.2)
    assert subscriber.notification_ids() == want
