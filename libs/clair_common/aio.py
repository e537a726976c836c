"""Small asyncio helpers the services' background loops share."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancels `tasks` and waits until each has stopped: a background loop's `close`. Its
    cancellation is swallowed; any other exception a task ends with is raised."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
