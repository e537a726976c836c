"""How `clair serve` starts services without importing them.

Each service package registers a starter under the `clair.services` entry-point group; the
starter receives a ServiceContext and returns a Service: its routes, any middleware it needs on
the shared app, the object other services call (combo mode), and how to stop it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
from starlette.middleware import Middleware

from clair_common.clients import Indexer, Matcher
from clair_common.config.views import IndexerView, MatcherView, NotifierView
from clair_common.db.migrate import migrate
from clair_common.db.pool import create_pool, pool_timeouts
from clair_common.http.routes import Operation

SERVICE_ORDER = ("indexer", "matcher", "notifier")

View = TypeVar("View", IndexerView, MatcherView, NotifierView)


@dataclass(slots=True)
class ServiceContext(Generic[View]):
    """What a starter is handed: its own config section(s) plus the shared keys, typed, so a
    service cannot read another's section (`ServiceContext[IndexerView]` has no `matcher`)."""

    config: View
    dsn: str | None  # resolved connstring for this service ("" or None: libpq environment)
    migrations: bool
    indexer: Indexer | None = None  # peers: local objects in combo mode, HTTP clients otherwise
    matcher: Matcher | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # The config key that gave `dsn`, named in database errors: `<service>.connstring`, or
    # `<service>.database.postgresql.dsn` when the section's database block is used.
    dsn_key: str | None = None


class Service(Protocol):
    name: str
    operations: Sequence[Operation]
    middleware: Sequence[Middleware]
    api: Any  # the object satisfying this service's Protocol in clair_common.clients

    async def ready(self) -> None:
        """Called once the API listener is about to serve (start background loops here)."""

    async def close(self) -> None: ...


Starter = Callable[[ServiceContext[Any]], Awaitable[Service]]


async def open_service_pool(
    ctx: ServiceContext[Any], schema: str, package: str, application_name: str
) -> asyncpg.Pool:
    """The service's pool on its schema, after applying `package`'s pending migrations when
    `ctx.migrations`; database errors name `ctx.dsn_key`."""
    if ctx.migrations:
        await migrate(ctx.dsn, schema, package, key=ctx.dsn_key)
    return await create_pool(
        ctx.dsn,
        schema=schema,
        key=ctx.dsn_key,
        application_name=application_name,
        **pool_timeouts(ctx.config.shared),
    )


class Closable(Protocol):
    async def close(self) -> None: ...


async def close_in_reverse(resources: Sequence[Closable]) -> None:
    """A service's `close`: what its starter opened, the last opened first (the loops that use
    a pool stop before the pool does)."""
    for res in reversed(resources):
        await res.close()


def load_starter(name: str) -> Starter:
    for ep in entry_points(group="clair.services"):
        if ep.name == name:
            starter: Starter = ep.load()
            return starter
    raise RuntimeError(f"service {name!r} is not installed (no clair.services entry point)")
