"""Delivery of notification sets to subscribers (clair-api.md 8): one module per mechanism.

Every `delivery_interval`, each set whose receipt is `created`, or `delivery_failed` and past
its backoff, is handed to the configured deliverer under the advisory lock of its id; success
marks it `delivered`, failure `delivery_failed`. Clair retries a failed set on every tick
forever; here the wait doubles from the delivery interval per failure, up to RETRY_CAP, so a
subscriber that is down is not hammered and comes back to a steady trickle.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from clair_common.db.locks import AdvisoryLocks
from clair_notifier.store import PENDING, NotifierStore

log = logging.getLogger("clair.notifier.delivery")

RETRY_CAP = timedelta(hours=1)

__all__ = ["Deliverer", "DeliveryError", "DeliveryLoop", "DeliveryReport"]


class DeliveryError(Exception):
    """The subscriber did not take the set; it is retried on the next tick."""


class Deliverer(Protocol):
    name: str

    async def deliver(self, notification_id: uuid.UUID) -> None:
        """Raises DeliveryError (or any error) when the set was not delivered."""

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

    async def run_once(self) -> DeliveryReport:
        report = DeliveryReport()
        for notification_id in await self.store.pending():
            key = str(notification_id)
            async with self.locks.try_hold(key) as held:
                # Re-read under the lock: another replica may have delivered it meanwhile.
                if not held or await self.store.status(notification_id) not in PENDING:
                    report.skipped.append(key)
                    continue
                try:
                    await self.deliverer.deliver(notification_id)
                except Exception as exc:
                    reason = " ".join(str(exc).split()) or type(exc).__name__
                    log.warning("%s delivery of %s failed: %s", self.deliverer.name, key, reason)
                    await self.store.delivery_failed(
                        notification_id, reason, self.retry_base, self.retry_cap
                    )
                    report.failed[key] = reason
                    continue
                await self.store.set_status(notification_id, "delivered")
                report.delivered.append(key)
        return report

    async def close(self) -> None:
        await self.deliverer.close()
