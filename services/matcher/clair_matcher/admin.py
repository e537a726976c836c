"""The matcher's `clairctl admin` tasks."""

from __future__ import annotations

from typing import Any

from clair_common.clairctl.admin import AdminTask, migrate_task, service_dsn, service_dsn_key
from clair_matcher.store import MatcherStore


async def _drop_pyupio(cfg: Any) -> str:
    """Clair's post-4.7.0 task: the pyup.io feed is gone and its records confuse the Python
    matcher, so its operations go, then the vulnerabilities no operation links any more."""
    store = await MatcherStore.open(
        service_dsn(cfg, "matcher"),
        key=service_dsn_key(cfg, "matcher"),
        application_name="clairctl",
        migrations=False,
        min_size=1,
        max_size=1,
    )
    try:
        ops, vulns = await store.drop_updater("pyupio")
    finally:
        await store.close()
    return f"pyupio: {ops} update operations, {vulns} vulnerabilities deleted"


def tasks() -> list[AdminTask]:
    return [
        migrate_task("matcher", MatcherStore.migrate),
        AdminTask("post", "matcher", "delete pyupio vulnerabilities", _drop_pyupio, ("v4.7.0",)),
    ]
