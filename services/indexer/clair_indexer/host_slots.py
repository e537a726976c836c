"""Per-host shares of the indexer's slots, so that slow layer hosts cannot take them all.

The rate floor and deadline (`indexer.layer_min_rate`, `indexer.layer_fetch_timeout`) end a
slow download eventually; until then it holds an index request slot and a layer scan slot.
Many requests for layers on a dripping host could hold every slot and turn every other client
away with 429. So each layer host (host and port of the layer URI; a redirect's target is not
known in advance) gets a share of each:

- `HostQuota`: index requests that will download from a host; past its share a request is
  refused at once (HTTP 429), without waiting for and holding a request slot.
- `HostGate`: layer downloads from a host; past its share a layer waits for its host's turn
  before it takes a scan slot, so a manifest of many slow layers leaves scan slots free.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from prometheus_client import Counter
from yarl import URL

HOST_LIMITED = Counter(
    "clair_indexer_host_limited_total",
    "Index requests refused because their layer host held its share of request slots "
    "(also counted in clair_http_concurrencylimited_total).",
)


def layer_host(uri: str) -> str:
    """`host:port` of a layer URI, lower-cased; the URI itself when it has no host."""
    try:
        url = URL(uri, encoded=True)
        host = url.host
        port = url.port
    except (TypeError, ValueError):
        return uri
    if not host:
        return uri
    return f"{host.lower()}:{port}" if port is not None else host.lower()


class HostBusy(Exception):
    """A layer host already holds its share of index request slots."""

    def __init__(self, host: str, limit: int) -> None:
        super().__init__(
            f"{limit} index requests for layers on {host} are in progress "
            "(indexer.index_report_host_concurrency); retry later"
        )
        self.host = host


class HostQuota:
    """At most `limit` claims per host at once (None: unlimited); past it, HostBusy."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}

    @contextmanager
    def claim(self, hosts: Iterable[str]) -> Iterator[None]:
        """Claims a slot on every host in `hosts` (all or none), released on exit."""
        unique = sorted(set(hosts))
        limit = self.limit
        if limit is not None:
            # One event loop: check and increment cannot interleave with another claim.
            for host in unique:
                if self._held.get(host, 0) >= limit:
                    HOST_LIMITED.inc()
                    raise HostBusy(host, limit)
        for host in unique:
            self._held[host] = self._held.get(host, 0) + 1
        try:
            yield
        finally:
            for host in unique:
                left = self._held[host] - 1
                if left:
                    self._held[host] = left
                else:
                    del self._held[host]  # hosts come from clients: keep only busy ones


@dataclass(slots=True)
class _Turns:
    semaphore: asyncio.Semaphore
    users: int = 0


class HostGate:
    """At most `limit` holders per host at once (None: unlimited); others wait their turn."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._turns: dict[str, _Turns] = {}

    @asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        if self.limit is None:
            yield
            return
        turns = self._turns.get(host)
        if turns is None:
            turns = self._turns[host] = _Turns(asyncio.Semaphore(self.limit))
        turns.users += 1
        try:
            async with turns.semaphore:
                yield
        finally:
            turns.users -= 1
            if turns.users == 0:
                del self._turns[host]
