"""The rate watchdog (clair_common.progress.at_least) leaves no unread task errors behind."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from clair_common.progress import ByteCounter, at_least


async def _fails_when_cancelled() -> None:
    # Like a fetch whose DNS lookup fails in the same loop turn as shutdown cancels it.
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        raise RuntimeError("lookup failed") from None


@pytest.mark.parametrize("min_rate", [0.0, 10.0])
def test_cancelled_caller_leaves_no_unretrieved_error(min_rate: float) -> None:
    reported: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        caller = asyncio.ensure_future(
            at_least(_fails_when_cancelled(), ByteCounter(), min_rate, 30.0)
        )
        await asyncio.sleep(0.01)
        caller.cancel()
        with pytest.raises((asyncio.CancelledError, RuntimeError)):
            await caller
        await asyncio.sleep(0.01)
        gc.collect()

    asyncio.run(main())
    gc.collect()
    assert [c.get("message") for c in reported] == []
