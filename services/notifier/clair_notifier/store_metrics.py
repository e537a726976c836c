"""Clair's notifier store families: `clair_notifier_<method>_total` and
`clair_notifier_<method>_duration_seconds`, labelled `query` (Clair's notifier/postgres/*.go).

Each of our queries counts under the Clair method doing the same work, with Clair's query
label, so Clair's dashboards keep their series.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

__all__ = ["observed"]

# Clair method (as in its metric names) -> the name its Help text spells.
_METHODS = {
    "created": "created",
    "notifications": "notifications",
    "receipt": "receipt",
    "receiptbyuoid": "receiptByUOID",
    "setdelivered": "setDelivered",
    "setdeliveryfailed": "setDeliveryFailed",
    "setdeleted": "setDeleted",
    "deletenotifications": "deleteNotifications",
}
_COUNTERS = {
    method: Counter(
        f"clair_notifier_{method}",
        f"Total number of database queries issued in the {spelled} method.",
        ["query"],
    )
    for method, spelled in _METHODS.items()
}
_DURATIONS = {
    method: Histogram(
        f"clair_notifier_{method}_duration_seconds",
        f"The duration of all queries issued in the {spelled} method",
        ["query"],
    )
    for method, spelled in _METHODS.items()
}


@contextmanager
def observed(method: str, query: str = "query") -> Iterator[None]:
    """Count and time one query under Clair's `method` family."""
    _COUNTERS[method].labels(query).inc()
    with _DURATIONS[method].labels(query).time():
        yield
