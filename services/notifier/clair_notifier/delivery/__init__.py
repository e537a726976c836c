"""Delivery of notification sets to subscribers (clair-api.md 8): one module per mechanism.

Every `delivery_interval` (and once at start-up), the sets whose receipt is `created` or
`delivery_failed` are handed to the configured deliverer in the order they were made, each
under the advisory lock of its id; success marks it `delivered`, failure `delivery_failed`.
Direct deliverers (AMQP and STOMP with `direct: true`) are handed the whole set, and a set
they sent is then marked `deleted` at once, as Clair does: the subscriber has it all and will
not call back.

Unlike Clair, which retries every failed set on every tick, the sets form a queue: a failure
ends the tick and the failed set is retried after a wait that doubles from the delivery
interval per failure, up to RETRY_CAP; no later set overtakes it meanwhile. A subscriber
that is down is thus tried once per backoff step, not once per set and tick, and gets the
sets in order when it is back (a set is the diff from its updater's previous one). The log
says when delivery starts failing, when the reason changes, and when it recovers; the single
attempts are at debug level, the last reason is in the set's receipt.
"""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import urljoin

import orjson

from clair_common.config.base import TLS
from clair_common.db.locks import AdvisoryLocks
from clair_common.errors import one_line
from clair_common.tls import new_client_context
from clair_notifier.store import PENDING, NotifierStore

log = logging.getLogger("clair.notifier.delivery")

RETRY_CAP = timedelta(hours=1)

__all__ = [
    "Deliverer",
    "DeliveryError",
    "DeliveryLoop",
    "DeliveryReport",
    "callback_body",
    "rollups",
    "tls_context",
]


class DeliveryError(Exception):
    """The subscriber did not take the set; it is retried on the next tick."""


class Deliverer(Protocol):
    name: str
    # True: the set's notifications themselves are sent, not a callback to fetch them.
    direct: bool

    async def deliver(
        self, notification_id: uuid.UUID, notifications: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Raises DeliveryError (or any error) when the set was not delivered.

        `notifications` is the whole set for direct deliverers, empty for the others."""

    async def close(self) -> None: ...


@dataclass(slots=True)
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class DeliveryLoop:
    def __init__(
        self,
        store: NotifierStore,
        locks: AdvisoryLocks,
        deliverer: Deliverer,
        *,
        retry_base: timedelta = timedelta(seconds=5),
        retry_cap: timedelta = RETRY_CAP,
    ) -> None:
        self.store = store
        self.locks = locks
        self.deliverer = deliverer
        self.retry_base = retry_base
        self.retry_cap = max(retry_cap, retry_base)
        # The reason deliveries are failing with, None while they succeed: what is logged is
        # a change of it, not every attempt.
        self._failing: str | None = None
        self._failures = 0

    async def run_once(self) -> DeliveryReport:
        report = DeliveryReport()
        for notification_id in await self.store.pending():
            key = str(notification_id)
            async with self.locks.try_hold(key) as held:
                if not held:  # another replica is delivering it: the sets after it wait
                    report.skipped.append(key)
                    break
                # Re-read under the lock: another replica may have delivered it meanwhile.
                if await self.store.status(notification_id) not in PENDING:
                    report.skipped.append(key)
                    continue
                try:
                    notifications: Sequence[dict[str, Any]] = ()
                    if self.deliverer.direct:
                        notifications = await self.store.notifications(notification_id)
                    await self.deliverer.deliver(notification_id, notifications)
                except Exception as exc:
                    reason = one_line(exc)
                    self._failed(key, reason)
                    await self.store.delivery_failed(
                        notification_id, reason, self.retry_base, self.retry_cap
                    )
                    report.failed[key] = reason
                    break  # the subscriber is failing: the sets after this one wait
                await self.store.set_status(notification_id, "delivered")
                if self.deliverer.direct:
                    await self.store.set_status(notification_id, "deleted")
                self._delivered(key)
                report.delivered.append(key)
        return report

    def _failed(self, key: str, reason: str) -> None:
        self._failures += 1
        if reason == self._failing:
            log.debug("%s delivery of %s failed again: %s", self.deliverer.name, key, reason)
            return
        self._failing = reason
        log.warning(
            "%s delivery failing: %s (set %s; retried with backoff)",
            self.deliverer.name,
            reason,
            key,
        )

    def _delivered(self, key: str) -> None:
        if self._failing is not None:
            log.info(
                "%s delivery recovered after %d failed attempts (set %s delivered)",
                self.deliverer.name,
                self._failures,
                key,
            )
        else:
            log.debug("%s delivery of %s done", self.deliverer.name, key)
        self._failing, self._failures = None, 0

    async def close(self) -> None:
        await self.deliverer.close()


def tls_context(tls: TLS | None) -> ssl.SSLContext:
    """A client context on the system trust store, plus the configured client certificate
    and the deprecated `root_ca` when given."""
    context = new_client_context()
    if tls is not None:
        if tls.root_ca:
            context.load_verify_locations(cafile=tls.root_ca)
        if tls.cert:
            context.load_cert_chain(tls.cert, tls.key)
    return context


def callback_body(callback: str, notification_id: uuid.UUID) -> bytes:
    """The JSON of a callback delivery; the config guarantees `callback` ends in "/", so the
    id is appended to it."""
    return orjson.dumps(
        {
            "notification_id": str(notification_id),
            "callback": urljoin(callback, str(notification_id)),
        }
    )


def rollups(notifications: Sequence[dict[str, Any]], rollup: int) -> list[bytes]:
    """Direct-mode message bodies: JSON arrays of `rollup` notifications each (0 or 1: one)."""
    size = max(rollup, 1)
    return [
        orjson.dumps(list(notifications[i : i + size])) for i in range(0, len(notifications), size)
    ]
