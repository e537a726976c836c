"""The notifier's background loops: poll, deliver, collect garbage, each on its own interval.

As in Clair, the first poll comes one interval after start. Deliveries start at once: sets
left undelivered by a previous run (stopped, killed, or crash-looping faster than the delivery
interval, an hour by default) would otherwise wait a whole interval, or forever. A failing
tick is logged as one line and never stops its loop. Intervals come from the config (at least a
minute there); tests construct `Loops` directly with shorter ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from clair_common.aio import cancel_and_wait
from clair_notifier.delivery import DeliveryLoop
from clair_notifier.poller import Poller
from clair_notifier.store import NotifierStore

log = logging.getLogger("clair.notifier")

GC_INTERVAL = timedelta(hours=1)


class Loops:
    def __init__(
        self,
        poller: Poller,
        delivery: DeliveryLoop,
        store: NotifierStore,
        *,
        poll_interval: timedelta,
        delivery_interval: timedelta,
        gc_interval: timedelta = GC_INTERVAL,
    ) -> None:
        self.poller = poller
        self.delivery = delivery
        self.store = store
        self.poll_interval = poll_interval
        self.delivery_interval = delivery_interval
        self.gc_interval = gc_interval
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        for name, interval, tick, first in (
            ("poll", self.poll_interval, self.poller.run_once, self.poll_interval),
            ("delivery", self.delivery_interval, self.delivery.run_once, timedelta(0)),
            ("gc", self.gc_interval, self.store.collect_garbage, self.gc_interval),
        ):
            task = loop.create_task(
                _every(name, interval, tick, first), name=f"clair-notifier-{name}"
            )
            self._tasks.append(task)

    async def close(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()


async def _every(
    name: str, interval: timedelta, tick: Callable[[], Awaitable[Any]], first: timedelta
) -> None:
    await asyncio.sleep(first.total_seconds())
    while True:
        try:
            await tick()
        except Exception as exc:  # the loop outlives any single tick
            log.error("notifier %s failed: %s", name, " ".join(str(exc).split()) or exc)
        await asyncio.sleep(interval.total_seconds())
