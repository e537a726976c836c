"""Download progress: a watchdog that gives up on work whose bytes arrive slower than a minimum
rate, and an aiohttp session that counts the bytes its connections receive.

A host trickling a byte every few seconds beats any read timeout; it does not beat a floor on
bytes per window. Updaters read their feeds in their own ways (streamed to files, read whole,
paged), so for them the bytes are counted where they come off the sockets: a counting
protocol in the session's connector. The layer fetcher counts the bytes it writes itself.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from aiohttp.client_proto import ResponseHandler

from clair_common.aio import cancel_and_wait
from clair_common.tls import client_connector

T = TypeVar("T")


@dataclass(slots=True)
class ByteCounter:
    received: int = 0


class _CountingHandler(ResponseHandler):
    def __init__(self, counter: ByteCounter, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._counter = counter

    def data_received(self, data: bytes) -> None:
        self._counter.received += len(data)
        super().data_received(data)


def counting_session(counter: ByteCounter, **options: Any) -> aiohttp.ClientSession:
    """A `client_session` whose connections add every received byte to `counter`."""
    connector = client_connector()
    # The connector builds each connection's protocol from this factory (aiohttp 3.x).
    connector._factory = functools.partial(  # type: ignore[assignment]
        _CountingHandler, counter, loop=asyncio.get_running_loop()
    )
    return aiohttp.ClientSession(connector=connector, **options)


class TooSlow(Exception):
    """The download fell under the minimum rate for a whole window."""


async def at_least(work: Awaitable[T], counter: ByteCounter, min_rate: float, window: float) -> T:
    """`work`, cancelled with TooSlow when a `window` passes with under `min_rate` bytes/s.

    `min_rate` of 0 or less (or `window` of 0) turns the check off.
    """
    task = asyncio.ensure_future(work)
    # Cancelled from outside just as the work fails (shutdown during a failing DNS lookup), the
    # task's error would have no reader and asyncio would log it as a traceback.
    task.add_done_callback(_retrieve)
    if min_rate <= 0 or window <= 0:
        return await task
    floor = min_rate * window
    try:
        while True:
            seen = counter.received
            done, _ = await asyncio.wait({task}, timeout=window)
            if done:
                return task.result()
            if counter.received - seen < floor:
                await cancel_and_wait(task)
                raise TooSlow(
                    f"slower than {min_rate:g} bytes/s for {window:g}s "
                    f"({counter.received - seen} bytes)"
                )
    finally:
        if not task.done():
            task.cancel()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
