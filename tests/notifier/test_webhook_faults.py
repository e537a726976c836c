"""A webhook subscriber down for a while (refusing connections, then answering 500, then
hanging) and back: every set made meanwhile arrives, in the order made, with backoff between
attempts, one log line per change of state; Clair's API then pages and deletes each set.

Real parts: the subscriber is an HTTP server on loopback, receipts live in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

import httpx
import pytest

from clair_common.config.notifier import Webhook
from clair_common.db.locks import AdvisoryLocks
from clair_common.http.app import build_api_app
from clair_notifier.app import build_operations
from clair_notifier.delivery import DeliveryLoop
from clair_notifier.delivery.webhook import WebhookDeliverer
from clair_notifier.service import NotifierService
from clair_notifier.store import NotifierStore
from tests.notifier.faults import attempts, attempts_allowed, delivery_log, ticking, until
from tests.notifier.receiver import WebhookReceiver, read_pages
from tests.notifier.test_api import put_set

CALLBACK = "http://clair/notifier/api/v1/notification/"
BASE, CAP = timedelta(milliseconds=200), timedelta(seconds=1)
TIMEOUT = 0.5  # the deliverer's, so a hung subscriber costs half a second per attempt
PHASE = 1.5  # seconds each fault lasts


async def test_subscriber_down_then_back_gets_every_set_in_order(
    store: NotifierStore,
    locks: AdvisoryLocks,
    receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = Webhook.model_validate({"target": receiver.url, "callback": CALLBACK})
    deliverer = WebhookDeliverer(config, timeout=TIMEOUT)
    loop = DeliveryLoop(store, locks, deliverer, retry_base=BASE, retry_cap=CAP)
    made: list[uuid.UUID] = []
    bodies: dict[str, list[str]] = {}

    async def make(count: int) -> None:
        set_id, items = await put_set(store, count)
        made.append(set_id)
        bodies[str(set_id)] = sorted(str(b.id) for b in items)

    async def refused(times: int) -> bool:
        return await attempts(store, made) >= times

    def answered(status: int | None) -> int:
        return len([d for d in receiver.deliveries if d.status == status])

    started = asyncio.get_running_loop().time()
    try:
        async with ticking(loop) as ticker:
            # Each fault lasts until the notifier has met it at least twice.
            await receiver.stop()  # connection refused
            await make(3)
            await until("refused twice", lambda: refused(2), ticker)
            await make(1)
            receiver.status = 500
            await receiver.start()  # the same port
            await make(5)
            await until("two 500s", lambda: answered(500) >= 2, ticker)
            receiver.hang = True
            await make(2)
            await until("two hangs", lambda: answered(None) >= 2, ticker)
            assert receiver.accepted() == []
            outage = asyncio.get_running_loop().time() - started
            receiver.hang, receiver.status = False, 200
            await until("every set delivered", lambda: len(set(receiver.accepted())) == 4, ticker)
    finally:
        await loop.close()

    want = [str(s) for s in made]
    # At least once each, nothing else, and first in the order the sets were made.
    assert sorted(set(receiver.accepted())) == sorted(want)
    assert list(dict.fromkeys(receiver.accepted())) == want
    for d in receiver.deliveries:
        assert d.body["callback"] == CALLBACK + d.body["notification_id"]
    assert [await store.status(s) for s in made] == ["delivered"] * 4

    # Backoff, not a busy loop: the 500s and hangs the subscriber saw, and the refused
    # attempts it could not see, are what one backoff schedule allows over the outage,
    # not one per set (nor one per tick).
    failed = await attempts(store, made)
    seen = len([d for d in receiver.deliveries if d.status != 200])
    assert 3 <= seen < failed <= attempts_allowed(outage, BASE, CAP) + 1, (seen, failed)

    # One line per change of state: refused, 500, hanging, recovered. No traceback.
    lines = delivery_log(caplog.records)
    assert len(lines) == 4, lines
    assert "Connect call failed" in lines[0] or "Cannot connect" in lines[0]
    assert "HTTP 500" in lines[1]
    assert "timed out" in lines[2]
    assert "recovered" in lines[3]

    # What Clair's API gives the subscriber for each: the set's notifications a page at a
    # time in id order, then DELETE acknowledges it for good.
    service = NotifierService(store)
    app = build_api_app(build_operations(service))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://clair"
    ) as client:
        for set_id in want:
            assert await read_pages(client, CALLBACK + set_id) == bodies[set_id]
            assert (await client.delete(CALLBACK + set_id)).status_code == 200
    assert [await store.status(s) for s in made] == ["deleted"] * 4
    assert (await loop.run_once()).delivered == []
