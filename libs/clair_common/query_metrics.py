"""claircore's and Clair's per-method store families, in one place for every store.

Each store method of claircore (and of Clair's notifier) counts its database queries in
`<prefix>_<method>_total` and times them in `<prefix>_<method>_duration_seconds`, labelled
`query` (a few also `success`). Our stores count each query under the method and query label
of the Clair query doing the same work, so Clair's dashboards keep their series. Buckets are
Go's `prometheus.DefBuckets`: claircore sets none.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import REGISTRY, Collector

__all__ = [
    "GO_DEFAULT_BUCKETS",
    "QUERY",
    "QUERY_SUCCESS",
    "BareCounter",
    "QueryFamily",
    "QueryMetrics",
]

GO_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

P = ParamSpec("P")
R = TypeVar("R")


QUERY = ("query",)
QUERY_SUCCESS = ("query", "success")


@dataclass(frozen=True, slots=True)
class QueryFamily:
    """One method's pair of families, with the names, help texts and labels claircore gives
    them: mostly `query`; some add `success` (claircore's promTimer families) or `is_delta`,
    and GC's counter has `success` where its histogram has not."""

    total: str  # the counter's name without `_total` (prometheus_client appends it)
    duration: str
    total_help: str
    duration_help: str
    total_labels: tuple[str, ...] = QUERY
    duration_labels: tuple[str, ...] = QUERY


def claircore_family(
    prefix: str,
    name: str,
    spelled: str,
    *,
    total_name: str | None = None,
    duration_name: str | None = None,
    total_help: str = "Total number of database queries issued in the {} method.",
    duration_help: str = "The duration of all queries issued in the {} method",
    total_labels: tuple[str, ...] = QUERY,
    duration_labels: tuple[str, ...] = QUERY,
) -> QueryFamily:
    """A method's families named as claircore names them: `<prefix><name>` (counter) and
    `<prefix><name>_duration_seconds`, help texts naming the Go method as `spelled`; the
    `*_name` arguments keep claircore's typos where its two names differ."""
    return QueryFamily(
        prefix + (total_name or name),
        f"{prefix}{duration_name or name}_duration_seconds",
        total_help.format(spelled),
        duration_help.format(spelled),
        total_labels,
        duration_labels,
    )


class QueryMetrics:
    """The families of one store, keyed by the method name used at the call sites."""

    def __init__(self, families: Mapping[str, QueryFamily]) -> None:
        self.families = dict(families)
        self._counters: dict[str, Counter] = {}
        self._durations: dict[str, Histogram] = {}
        for method, family in self.families.items():
            self._counters[method] = Counter(
                family.total, family.total_help, list(family.total_labels)
            )
            self._durations[method] = Histogram(
                family.duration,
                family.duration_help,
                list(family.duration_labels),
                buckets=GO_DEFAULT_BUCKETS,
            )
        # Resolving a labelled child costs more than observing it; keep them.
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def _child(self, method: str, values: dict[str, str]) -> tuple[Any, Any]:
        key = (method, *values.values())
        found = self._children.get(key)
        if found is None:
            family = self.families[method]
            found = self._children[key] = (
                self._counters[method].labels(*(values[n] for n in family.total_labels)),
                self._durations[method].labels(*(values[n] for n in family.duration_labels)),
            )
        return found

    @contextmanager
    def observed(self, method: str, query: str = "query", **labels: str) -> Iterator[None]:
        """Count and time the enclosed query under `method`'s families; `success` is whether
        it raised, other labels (`is_delta`) are given."""
        started = time.perf_counter()
        success = "false"
        try:
            yield
            success = "true"
        finally:
            counter, duration = self._child(method, {"query": query, "success": success, **labels})
            counter.inc()
            duration.observe(time.perf_counter() - started)

    def timed(
        self, method: str, query: str = "query"
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
        """Decorate a store coroutine doing one Clair query: it counts wherever it moves.

        Its series exist from the start, at zero: a query a cache spares (the index report a
        combo matcher reads through the indexer's held copy) must not make its family vanish
        from the scrape Clair's dashboards read."""
        self._child(method, {"query": query, "success": "true"})

        def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
            @functools.wraps(function)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                with self.observed(method, query):
                    return await function(*args, **kwargs)

            return wrapper

        return decorate


class BareCounter(Collector):
    """A counter exposed under its exact name, untyped.

    Go counters named without `_total` (claircore's `scanned_manifests`, pgx's pool counts)
    would be renamed by prometheus_client's Counter, and dashboards query the names.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        REGISTRY.register(self)

    def inc(self, *values: str) -> None:
        with self._lock:
            self._values[values] = self._values.get(values, 0.0) + 1

    def value(self, *values: str) -> float:
        return self._values.get(values, 0.0)

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "unknown")
        with self._lock:
            for values, count in self._values.items():
                metric.add_sample(self.name, dict(zip(self.labels, values, strict=True)), count)
        yield metric
