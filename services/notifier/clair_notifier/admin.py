"""The notifier's `clairctl admin` tasks."""

from __future__ import annotations

import os
from typing import Any

from clair_common.clairctl.admin import AdminTask, SkipTask
from clair_common.config import resolve_connstring
from clair_common.db.migrate import migrate


async def _migrate(cfg: Any) -> str:
    dsn = resolve_connstring(cfg.notifier.dsn, os.environ)
    if dsn is None:
        raise SkipTask("no notifier.connstring configured (nor PG* variables)")
    applied = await migrate(dsn, "notifier", "clair_notifier")
    return f"applied migrations {applied}" if applied else "migrations up to date"


def tasks() -> list[AdminTask]:
    return [AdminTask("pre", "notifier", "apply pending notifier migrations", _migrate)]
