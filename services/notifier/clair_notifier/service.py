"""The notifier's API side: pages of a notification set, and deleting (acknowledging) a set."""

from __future__ import annotations

import uuid
from typing import Any

from clair_notifier.store import NotifierStore

DEFAULT_PAGE_SIZE = 500


class NoReceiptError(LookupError):
    def __init__(self, notification_id: uuid.UUID) -> None:
        super().__init__(f"no receipt exists for notification id {notification_id}")


class NotifierService:
    def __init__(self, store: NotifierStore) -> None:
        self.store = store

    async def page(
        self,
        notification_id: uuid.UUID,
        size: int = DEFAULT_PAGE_SIZE,
        after: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """Clair's page document: `page.size` echoes the size asked for, `page.next` is
        present only when more notifications follow. An unknown set is an empty page."""
        if size < 0:
            raise ValueError("LIMIT must not be negative")
        notifications, next_id = await self.store.page(notification_id, size, after)
        page: dict[str, Any] = {"size": size}
        if next_id is not None:
            page["next"] = str(next_id)
        return {"page": page, "notifications": notifications}

    async def delete(self, notification_id: uuid.UUID) -> None:
        """Marks the set deleted (its bodies go at the next garbage collection)."""
        if not await self.store.set_status(notification_id, "deleted"):
            raise NoReceiptError(notification_id)
