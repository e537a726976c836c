"""Pool statistics under the names claircore's `poolstats` collector gives pgxpool's.

Clair's dashboards read nine `pgxpool_*` families labelled `application_name`. asyncpg keeps
sizes but no acquire statistics, so `MeteredPool` counts acquires at the one place every
`acquire()`, `fetch()` and `execute()` goes through. pgx's counters without a `_total`
suffix (`pgxpool_acquire_count`, ...) are exposed untyped: Prometheus' Python client would
otherwise rename them, and dashboards query the names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

__all__ = ["MeteredPool", "PoolStatsCollector", "register_pool"]

_LABELS = ["application_name"]


class MeteredPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg's Pool is untyped
    """An asyncpg pool that keeps pgxpool's acquire statistics."""

    __slots__ = ("acquire_count", "acquire_seconds", "canceled_acquire_count", "empty_acquire")

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("connection_class", asyncpg.Connection)
        kwargs.setdefault("record_class", asyncpg.Record)
        kwargs.setdefault("max_queries", 50000)
        kwargs.setdefault("max_inactive_connection_lifetime", 300.0)
        kwargs.setdefault("loop", None)
        super().__init__(**kwargs)
        self.acquire_count = 0
        self.acquire_seconds = 0.0
        self.canceled_acquire_count = 0
        self.empty_acquire = 0

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109  # asyncpg's signature
        # pgx counts an acquire as "empty" when no idle connection was there to take.
        empty = self.get_idle_size() == 0
        started = time.perf_counter()
        try:
            connection = await super()._acquire(timeout)
        except asyncio.CancelledError:
            self.canceled_acquire_count += 1
            raise
        self.acquire_count += 1
        self.acquire_seconds += time.perf_counter() - started
        if empty:
            self.empty_acquire += 1
        return connection


# Pools are few and long-lived; closed ones are dropped when metrics are next collected.
_POOLS: dict[str, asyncpg.Pool] = {}


def register_pool(application_name: str, pool: asyncpg.Pool) -> None:
    _POOLS[application_name] = pool


def _untyped(name: str, documentation: str) -> Metric:
    return Metric(name, documentation, "unknown")


class PoolStatsCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        acquire_count = _untyped(
            "pgxpool_acquire_count", "Cumulative count of successful acquires from the pool."
        )
        acquire_duration = CounterMetricFamily(
            "pgxpool_acquire_duration_seconds",
            "Total duration of all successful acquires from the pool in nanoseconds.",
            labels=_LABELS,
        )
        acquired = GaugeMetricFamily(
            "pgxpool_acquired_conns",
            "Number of currently acquired connections in the pool.",
            labels=_LABELS,
        )
        canceled = _untyped(
            "pgxpool_canceled_acquire_count",
            "Cumulative count of acquires from the pool that were canceled by a context.",
        )
        constructing = GaugeMetricFamily(
            "pgxpool_constructing_conns",
            "Number of conns with construction in progress in the pool.",
            labels=_LABELS,
        )
        empty = _untyped(
            "pgxpool_empty_acquire",
            "Cumulative count of successful acquires from the pool that waited for a resource "
            "to be released or constructed because the pool was empty.",
        )
        idle_family = GaugeMetricFamily(
            "pgxpool_idle_conns", "Number of currently idle conns in the pool.", labels=_LABELS
        )
        max_family = GaugeMetricFamily(
            "pgxpool_max_conns", "Maximum size of the pool.", labels=_LABELS
        )
        total_family = GaugeMetricFamily(
            "pgxpool_total_conns",
            "Total number of resources currently in the pool. The value is the sum of "
            "ConstructingConns, AcquiredConns, and IdleConns.",
            labels=_LABELS,
        )
        for name, pool in list(_POOLS.items()):
            if pool.is_closing():
                _POOLS.pop(name, None)
                continue
            labels = {"application_name": name}
            total, idle = pool.get_size(), pool.get_idle_size()
            metered = pool if isinstance(pool, MeteredPool) else None
            acquire_count.add_sample(
                "pgxpool_acquire_count", labels, metered.acquire_count if metered else 0
            )
            acquire_duration.add_metric([name], metered.acquire_seconds if metered else 0.0)
            canceled.add_sample(
                "pgxpool_canceled_acquire_count",
                labels,
                metered.canceled_acquire_count if metered else 0,
            )
            empty.add_sample(
                "pgxpool_empty_acquire", labels, metered.empty_acquire if metered else 0
            )
            acquired.add_metric([name], total - idle)
            constructing.add_metric([name], 0)  # asyncpg connects inside acquire: never visible
            idle_family.add_metric([name], idle)
            max_family.add_metric([name], pool.get_max_size())
            total_family.add_metric([name], total)
        yield from (
            acquire_count,
            acquire_duration,
            acquired,
            canceled,
            constructing,
            empty,
            idle_family,
            max_family,
            total_family,
        )


REGISTRY.register(PoolStatsCollector())
