"""The notifier's `clairctl admin` tasks."""

from __future__ import annotations

from clair_common.clairctl.admin import AdminTask, migrate_task
from clair_common.db.migrate import migrate


async def _migrate(dsn: str, *, key: str) -> list[int]:
    return await migrate(dsn, "notifier", "clair_notifier", key=key)


def tasks() -> list[AdminTask]:
    return [migrate_task("notifier", _migrate)]
