"""A real `clair serve --mode notifier` stopped (SIGTERM) or killed (SIGKILL) in the middle of
delivering: the next process delivers what was left, at once rather than a delivery interval
(an hour by default) later, and does not send again what was delivered; the state is in
PostgreSQL. The subscriber then pages and deletes each set through the new process's API.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
import yaml

from clair_notifier.store import NotifierStore
from tests.fixtures.server import ClairProcess, clair_server, free_port, wait_ready
from tests.notifier.faults import until
from tests.notifier.receiver import WebhookReceiver, read_pages
from tests.notifier.test_api import put_set

CALLBACK = "http://clair/notifier/api/v1/notification/"
PATH = "/notifier/api/v1/notification/"


def config(workdir: Path, dsn: str, target: str) -> tuple[str, ...]:
    dead = f"http://127.0.0.1:{free_port()}"  # the first poll is hours away: never asked
    path = workdir / "config.yaml"
    notifier = {
        "connstring": dsn,
        "migrations": True,
        "indexer_addr": dead,
        "matcher_addr": dead,
        "webhook": {"target": target, "callback": CALLBACK},
    }
    path.write_text(yaml.safe_dump({"notifier": notifier, "updaters": {"sets": []}}))
    return ("--config", str(path))


async def started(clair: ClairProcess) -> None:
    await asyncio.to_thread(wait_ready, clair)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_restart_mid_delivery_delivers_the_rest_once(
    pg_dsn: str,
    tmp_path: Path,
    store: NotifierStore,
    receiver: WebhookReceiver,
    stop: signal.Signals,
) -> None:
    made = [(await put_set(store, n))[0] for n in (1, 3, 2)]
    first, hung, last = (str(s) for s in made)
    receiver.hang_ids = {hung}  # answers the first set, then hangs on the second
    args = config(tmp_path, pg_dsn, receiver.url)

    with clair_server(tmp_path, mode="notifier", args=args, name="notifier-1") as one:
        await started(one)
        await until("the second set in flight", lambda: len(receiver.deliveries) >= 2)
        assert await store.status(made[0]) == "delivered"
        one.proc.send_signal(stop)
        code = await asyncio.to_thread(one.proc.wait, 15)
        assert code == (0 if stop == signal.SIGTERM else -signal.SIGKILL), one.log_text()
    assert [await store.status(s) for s in made[1:]] == ["created", "created"]

    receiver.hang_ids.clear()
    with clair_server(tmp_path, mode="notifier", args=args, name="notifier-2") as two:
        await started(two)

        async def all_delivered() -> bool:
            return [await store.status(s) for s in made] == ["delivered"] * 3

        # At once: the delivery interval is an hour (the default).
        await until("the rest delivered", all_delivered, within=20)
        # The delivered set was not sent again; the one in flight was, as at-least-once
        # allows; the last once; the first answered of each in the order made.
        bodies = [d.body["notification_id"] for d in receiver.deliveries]
        assert bodies == [first, hung, hung, last]
        assert receiver.accepted() == [first, hung, last]

        # The subscriber reads each set through the new process: pages of two in id order,
        # then DELETE.
        async with httpx.AsyncClient(base_url=two.api, timeout=10) as http:
            for set_id, count in zip(made, (1, 3, 2), strict=True):
                ids = await read_pages(http, PATH + str(set_id))
                want = await store.notifications(set_id)
                assert ids == [n["id"] for n in want] and len(ids) == count
                assert (await http.delete(PATH + str(set_id))).status_code == 200
        assert [await store.status(s) for s in made] == ["deleted"] * 3
        logs = one.log_text() + two.log_text()
        assert "Traceback" not in logs, logs
