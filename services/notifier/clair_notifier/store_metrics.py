"""Clair's notifier store families: `clair_notifier_<method>_total` and
`clair_notifier_<method>_duration_seconds`, labelled `query` (Clair's notifier/postgres/*.go).

Each of our queries counts under the Clair method doing the same work, with Clair's query
label, so Clair's dashboards keep their series.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from clair_common.query_metrics import QueryMetrics, claircore_family

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
_STORE = QueryMetrics(
    {
        method: claircore_family("clair_notifier_", method, spelled)
        for method, spelled in _METHODS.items()
    }
)


@contextmanager
def observed(method: str, query: str = "query") -> Iterator[None]:
    """Count and time one query under Clair's `method` family."""
    with _STORE.observed(method, query):
        yield
