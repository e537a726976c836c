"""Helpers for the notifier's delivery fault tests: a delivery loop ticking in the background
as the service runs it, waiting on what the subscriber got, and the bounds a backoff sets."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from clair_notifier.delivery import DeliveryLoop
from clair_notifier.store import NotifierStore

TICK = 0.05  # how often the background loop looks for due sets: far below the backoff base


@asynccontextmanager
async def ticking(loop: DeliveryLoop) -> AsyncIterator[asyncio.Task[None]]:
    """`loop.run_once` every TICK in a task, as the notifier's delivery loop runs; a tick that
    raises ends the task, which `until` reports."""

    async def run() -> None:
        while True:
            await loop.run_once()
            await asyncio.sleep(TICK)

    task = asyncio.create_task(run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(
    what: str,
    done: Callable[[], bool | Awaitable[bool]],
    ticker: asyncio.Task[None] | None = None,
    within: float = 20,
) -> None:
    """Waits for `done()` (a bool or an awaitable one), while the delivery loop runs."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = done()
        if await result if inspect.isawaitable(result) else result:
            return
        if ticker is not None and ticker.done():
            ticker.result()  # the tick's exception, if any
            pytest.fail(f"delivery loop ended before {what}")
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not {what} within {within} s")
        await asyncio.sleep(TICK)


def attempts_allowed(seconds: float, base: timedelta, cap: timedelta) -> int:
    """How many attempts a backoff from `base` doubling up to `cap` allows in `seconds`,
    counting the first one at 0 (ticks and the attempts' own time only make it fewer)."""
    t, n = 0.0, 0
    while t <= seconds:
        n += 1
        t += min(base.total_seconds() * 2 ** (n - 1), cap.total_seconds())
    return n


async def attempts(store: NotifierStore, sets: Sequence[uuid.UUID]) -> int:
    """Failed attempts recorded on the sets' receipts."""
    total = await store.pool.fetchval(
        "SELECT coalesce(sum(attempts), 0) FROM receipt WHERE notification_id = ANY($1::uuid[])",
        list(sets),
    )
    return int(total)


def delivery_log(records: Sequence[logging.LogRecord]) -> list[str]:
    """The delivery loop's lines at INFO and above; fails on any traceback, and on warnings
    from anyone else (a library repeating each failure the loop already reported)."""
    traced = [r for r in records if r.exc_info or r.stack_info]
    assert not traced, [f"{r.name}: {r.getMessage()}" for r in traced]
    mine = "clair.notifier.delivery"
    others = [r for r in records if r.levelno >= logging.WARNING and r.name != mine]
    assert not others, [f"{r.name}: {r.getMessage()}" for r in others]
    return [r.getMessage() for r in records if r.name == mine and r.levelno >= logging.INFO]
