"""Retries of one layer's download: capped, jittered exponential backoff, Retry-After honoured,
and a minimum transfer rate per attempt."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from clair_common.progress import ByteCounter, TooSlow, at_least
from clair_indexer._tap import StreamTap
from clair_indexer.fetch._errors import FetchError, Transient

T = TypeVar("T")

log = logging.getLogger("clair_indexer.fetch")

_BACKOFF_CAP = 10.0

# One attempt: the tap to feed (None once a retry made the stream unusable), its byte counter.
Attempt = Callable[[StreamTap | None, ByteCounter], Awaitable[T]]


async def retrying(
    attempt: Attempt[T],
    digest: str,
    tap: StreamTap | None,
    *,
    retries: int,
    backoff: float,
    min_rate: float,
    rate_window: float,
) -> T:
    """Runs `attempt` until it succeeds, fails for good, or used up `retries`.

    A retried download cannot resume the stream a consumer was reading: its tap is failed
    (the consumer then reads the verified file instead) and later attempts feed no tap.
    """
    tries = 0
    try:
        while True:
            counter = ByteCounter()
            try:
                return await at_least(attempt(tap, counter), counter, min_rate, rate_window)
            except TooSlow as exc:
                raise FetchError(
                    f"layer {digest}: host {exc} (indexer.layer_min_rate)", client_error=True
                ) from None
            except Transient as exc:
                if tap is not None:
                    tap.fail(f"download interrupted: {exc}")
                    tap = None
                if tries >= retries:
                    # The manifest named a host that does not answer well: its problem.
                    raise FetchError(
                        f"layer {digest}: {exc} (gave up after {tries + 1} attempts)",
                        client_error=True,
                    ) from exc
                delay = min(_BACKOFF_CAP, backoff * 2**tries)
                delay = delay * random.uniform(0.5, 1.0)
                if exc.retry_after is not None:
                    delay = min(_BACKOFF_CAP, max(delay, exc.retry_after))
                log.info("layer %s: %s; retrying in %.2fs", digest, exc, delay)
                await asyncio.sleep(delay)
                tries += 1
    except BaseException as exc:
        if tap is not None:
            tap.fail(f"download failed: {exc}")
        raise


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for; None when absent or not a number."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # the HTTP-date form is not worth parsing for a capped backoff
