"""The indexer's `clairctl admin` tasks."""

from __future__ import annotations

import os
from typing import Any

from clair_common.clairctl.admin import AdminTask, SkipTask
from clair_common.config import resolve_connstring
from clair_common.db.migrate import migrate


async def _migrate(cfg: Any) -> str:
    # Clair's pre-4.7 tasks build indexes concurrently ahead of the upgrade; here every index
    # belongs to a migration, so "pre" applies the pending ones under the migration lock.
    dsn = resolve_connstring(cfg.indexer.dsn, os.environ)
    if dsn is None:
        raise SkipTask("no indexer.connstring configured (nor PG* variables)")
    applied = await migrate(dsn, "indexer", "clair_indexer")
    return f"applied migrations {applied}" if applied else "migrations up to date"


def tasks() -> list[AdminTask]:
    return [AdminTask("pre", "indexer", "apply pending indexer migrations", _migrate)]
