"""The matcher's `clairctl admin` tasks."""

from __future__ import annotations

import os
from typing import Any

from clair_common.clairctl.admin import AdminTask, SkipTask
from clair_common.config import resolve_connstring
from clair_matcher.store import MatcherStore


def _dsn(cfg: Any) -> str:
    dsn = resolve_connstring(cfg.matcher.dsn, os.environ)
    if dsn is None:
        raise SkipTask("no matcher.connstring configured (nor PG* variables)")
    return dsn


async def _migrate(cfg: Any) -> str:
    applied = await MatcherStore.migrate(_dsn(cfg))
    return f"applied migrations {applied}" if applied else "migrations up to date"


async def _drop_pyupio(cfg: Any) -> str:
    """Clair's post-4.7.0 task: the pyup.io feed is gone and its records confuse the Python
    matcher, so its operations go, then the vulnerabilities no operation links any more."""
    store = await MatcherStore.open(
        _dsn(cfg), application_name="clairctl", migrations=False, min_size=1, max_size=1
    )
    try:
        ops, vulns = await store.drop_updater("pyupio")
    finally:
        await store.close()
    return f"pyupio: {ops} update operations, {vulns} vulnerabilities deleted"


def tasks() -> list[AdminTask]:
    return [
        AdminTask("pre", "matcher", "apply pending matcher migrations", _migrate),
        AdminTask("post", "matcher", "delete pyupio vulnerabilities", _drop_pyupio, ("v4.7.0",)),
    ]
