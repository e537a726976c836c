"""All SQL of the notifier (clair-api.md 4.3): notification sets, their bodies and receipts."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import asyncpg

from clair_common.models import Notification
from clair_notifier.store_metrics import observed

Status = Literal["created", "delivered", "delivery_failed", "deleted"]
PENDING: tuple[Status, ...] = ("created", "delivery_failed")

# Receipts other than `created` are kept this long (from the start of their day), as Clair does.
RECEIPT_RETENTION = timedelta(days=14)
# Clair's GC runs under the transaction lock (4, 2); same key, so mixed replicas agree.
_GC_LOCK = (4, 2)


@dataclass(frozen=True, slots=True)
class Body:
    """One notification of a set: its id and its JSON without the id."""

    id: uuid.UUID
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Garbage:
    bodies_deleted: int
    sets_deleted: int
    operations_deleted: int


class NotifierStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- the poller ------------------------------------------------------------------------
    async def receipted(self, refs: Sequence[str]) -> set[str]:
        """The update operations among `refs` that already have a receipt."""
        with observed("receiptbyuoid"):
            rows = await self.pool.fetch(
                "SELECT uo_id FROM receipt WHERE uo_id = ANY($1::uuid[])",
                [uuid.UUID(r) for r in refs],
            )
        return {str(r["uo_id"]) for r in rows}

    async def put_notifications(
        self,
        notification_id: uuid.UUID,
        ref: str,
        updater: str,
        bodies: Sequence[Body],
        status: Status = "created",
    ) -> bool:
        """Stores a set with its receipt in one transaction; False if `ref` has one already."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO notification (id) VALUES ($1)", notification_id)
                if bodies:
                    await conn.copy_records_to_table(
                        "notification_body",
                        records=[(b.id, notification_id, b.doc) for b in bodies],
                        columns=("id", "notification_id", "body"),
                    )
                await conn.execute(
                    "INSERT INTO notifier_update_operation (uo_id, updater) VALUES ($1, $2)"
                    " ON CONFLICT (uo_id) DO NOTHING",
                    uuid.UUID(ref),
                    updater,
                )
                inserted = await conn.fetchval(
                    "INSERT INTO receipt (notification_id, uo_id, status) VALUES ($1, $2, $3)"
                    " ON CONFLICT (uo_id) DO NOTHING RETURNING true",
                    notification_id,
                    uuid.UUID(ref),
                    status,
                )
                if not inserted:  # another replica got there first: keep its set, drop ours
                    raise _AlreadyReceipted
        except _AlreadyReceipted:
            return False
        return True

    # -- the API ---------------------------------------------------------------------------
    async def page(
        self, notification_id: uuid.UUID, size: int, after: uuid.UUID | None
    ) -> tuple[list[dict[str, Any]], uuid.UUID | None]:
        """Up to `size` notifications after `after` in id order, and the next page's start."""
        with observed("notifications", "pagedQuery"):
            rows = await self.pool.fetch(
                "SELECT id, body FROM notification_body WHERE notification_id = $1"
                " AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
                notification_id,
                after,
                size + 1,
            )
        more = len(rows) > size
        rows = rows[:size]
        # jsonb keeps no key order: decoding and encoding again restores Clair's field order.
        docs = [Notification.from_json({**r["body"], "id": str(r["id"])}).to_json() for r in rows]
        return docs, (rows[-1]["id"] if more and rows else None)

    async def notifications(self, notification_id: uuid.UUID) -> list[dict[str, Any]]:
        """The whole set in id order, as pages carry it: what direct deliverers send."""
        with observed("notifications"):
            rows = await self.pool.fetch(
                "SELECT id, body FROM notification_body WHERE notification_id = $1 ORDER BY id",
                notification_id,
            )
        return [Notification.from_json({**r["body"], "id": str(r["id"])}).to_json() for r in rows]

    async def status(self, notification_id: uuid.UUID) -> Status | None:
        with observed("receipt"):
            value = await self.pool.fetchval(
                "SELECT status::text FROM receipt WHERE notification_id = $1", notification_id
            )
        return None if value is None else cast(Status, value)

    async def set_status(self, notification_id: uuid.UUID, status: Status) -> bool:
        """False when the set has no receipt."""
        with observed(_SET_STATUS.get(status, "setdelivered")):
            done = await self.pool.fetchval(
                "UPDATE receipt SET status = $2, ts = now() WHERE notification_id = $1"
                " RETURNING true",
                notification_id,
                status,
            )
        return bool(done)

    # -- delivery --------------------------------------------------------------------------
    async def pending(self) -> list[uuid.UUID]:
        """Sets due for delivery, in the order they were made: the undelivered ones (created,
        or failed before) up to the first still in its backoff, which none overtakes.

        Made is the time of the set's update operation row, written in the set's transaction
        (the receipt's `ts` moves with every status change)."""
        with observed("created"):
            rows = await self.pool.fetch(
                "SELECT r.notification_id, r.retry_at IS NULL OR r.retry_at <= now() AS due"
                " FROM receipt r JOIN notifier_update_operation o ON o.uo_id = r.uo_id"
                " WHERE r.status = ANY($1::receipt_status[])"
                " ORDER BY o.ts, r.notification_id",
                list(PENDING),
            )
        due = itertools.takewhile(lambda r: r["due"], rows)
        return [r["notification_id"] for r in due]

    async def delivery_failed(
        self, notification_id: uuid.UUID, reason: str, base: timedelta, cap: timedelta
    ) -> None:
        """Marks a failed attempt; the next is due after `base` doubled per earlier failure,
        at most `cap`."""
        with observed("setdeliveryfailed"):
            await self._delivery_failed(notification_id, reason, base, cap)

    async def _delivery_failed(
        self, notification_id: uuid.UUID, reason: str, base: timedelta, cap: timedelta
    ) -> None:
        await self.pool.execute(
            "UPDATE receipt SET status = 'delivery_failed', ts = now(),"
            " attempts = attempts + 1,"
            " retry_at = now() + least($2::interval * power(2, least(attempts, 30)), $3::interval),"
            " details = jsonb_build_object('error', $4::text)"
            " WHERE notification_id = $1",
            notification_id,
            base,
            cap,
            reason,
        )

    # -- garbage collection ----------------------------------------------------------------
    async def collect_garbage(self, now: datetime | None = None) -> Garbage | None:
        """Clair's hourly collection; None when another replica is collecting.

        Sets a client deleted lose their bodies but keep their receipt, and each updater's
        newest receipt is kept however old: a receipt is what tells the poller an update
        operation was handled, so dropping the one of an operation that is still its
        updater's newest would notify the same change again.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", *_GC_LOCK):
                return None
            with observed("deletenotifications", "deleteNotifications"):
                bodies = await conn.execute(
                    "DELETE FROM notification_body b USING receipt r"
                    " WHERE b.notification_id = r.notification_id AND r.status = 'deleted'"
                )
            receipts = await conn.execute(
                "DELETE FROM notification n USING receipt r, notifier_update_operation o"
                " WHERE n.id = r.notification_id AND o.uo_id = r.uo_id"
                " AND r.status <> 'created'"
                " AND r.ts < date_trunc('day', coalesce($1::timestamptz, now())) - $2::interval"
                " AND EXISTS (SELECT 1 FROM notifier_update_operation newer"
                "   JOIN receipt nr ON nr.uo_id = newer.uo_id"
                "   WHERE newer.updater = o.updater AND newer.ts > o.ts)",
                now,
                RECEIPT_RETENTION,
            )
            operations = await conn.execute(
                "DELETE FROM notifier_update_operation o"
                " WHERE NOT EXISTS (SELECT 1 FROM receipt r WHERE r.uo_id = o.uo_id)"
            )
        return Garbage(_count(bodies), _count(receipts), _count(operations))


# Which of Clair's receipt updates a status change is.
_SET_STATUS = {
    "delivered": "setdelivered",
    "deleted": "setdeleted",
    "delivery_failed": "setdeliveryfailed",
}


class _AlreadyReceipted(Exception):
    """Rolls back a set whose update operation another replica receipted meanwhile."""


def _count(tag: str) -> int:
    return int(tag.rsplit(" ", 1)[-1])
