"""Single-flight downloads: concurrent fetches of one digest share one running download.

A flight stays registered until its last waiter has taken the result, so the blob it landed is
protected from eviction until every waiter has pinned it. A failed flight is never joined again:
the next fetch downloads afresh.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True, eq=False)
class Flight(Generic[T]):
    task: asyncio.Task[T]
    uri: str
    waiters: int = 0


class Flights(Generic[T]):
    def __init__(self, on_retire: Callable[[], None]) -> None:
        """`on_retire`: called when a flight is dropped (what it protected may now go)."""
        self._flights: dict[str, Flight[T]] = {}
        self._on_retire = on_retire

    def __contains__(self, key: object) -> bool:
        return key in self._flights

    def join(
        self, key: str, uri: str, start: Callable[[], Coroutine[Any, Any, T]]
    ) -> tuple[Flight[T], bool]:
        """The running flight for `key`, or a new one from `start()`; True when it is new."""
        flight = self._flights.get(key)
        if flight is not None:
            return flight, False
        flight = Flight(asyncio.create_task(start()), uri)
        self._flights[key] = flight
        flight.task.add_done_callback(functools.partial(self._landed, key, flight))
        return flight, True

    async def wait(self, key: str, flight: Flight[T], take: Callable[[T], R]) -> R:
        """`take(result)` once the flight lands, before the flight may be retired."""
        flight.waiters += 1
        try:
            # Shielded: one caller giving up must not abort the download the others await.
            return take(await asyncio.shield(flight.task))
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and flight.task.done():
                self._retire(key, flight)

    async def cancel_all(self) -> None:
        flights = list(self._flights.values())
        for flight in flights:
            flight.task.cancel()
        await asyncio.gather(*(f.task for f in flights), return_exceptions=True)

    def _landed(self, key: str, flight: Flight[T], _task: object) -> None:
        failed = flight.task.cancelled() or flight.task.exception() is not None
        if flight.waiters == 0 or failed:
            self._retire(key, flight)

    def _retire(self, key: str, flight: Flight[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
            self._on_retire()
