"""Starting against a database that is not there yet.

`clair serve` brings its introspection listener up first; while PostgreSQL does not answer
(not started yet, restarting, stopped in the middle of the migrations), starting the services
is retried instead of ending the process, so `/healthz` answers, `/readyz` says 503, and the
services migrate and serve as soon as the database is back. The log says once that it waits
and once that the database answered. Errors waiting cannot cure (credentials, TLS, a malformed
connection string) still end the process with their one line, as does `database_startup_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from clair_common.db.pool import DatabaseUnavailable
from clair_common.errors import one_line

T = TypeVar("T")

log = logging.getLogger("clair.db")

RETRY_INTERVAL = 1.0  # seconds between attempts, doubled up to RETRY_CAP
RETRY_CAP = 5.0

# A database that is down, starting, restarting, out of connections or not yet created.
_PASSING: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, name not (yet) resolvable
    TimeoutError,
    asyncpg.PostgresConnectionError,  # also a connection closed in the middle of a statement
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InvalidCatalogNameError,  # the database is being created
)
# What a configuration change must fix: retrying would only hide it.
_LASTING: tuple[type[BaseException], ...] = (
    ssl.SSLError,  # an OSError, but a certificate that fails now fails next time too
    asyncpg.InvalidAuthorizationSpecificationError,  # unknown role, wrong password, pg_hba
)


def passing(exc: BaseException) -> bool:
    """Is `exc` a database that does not answer yet, rather than a configuration error?"""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _LASTING):
            return False
        if isinstance(seen, DatabaseUnavailable):
            if seen.__cause__ is None:  # the connection string itself (raised "from None")
                return False
        elif isinstance(seen, _PASSING):
            return True
        if isinstance(seen, asyncpg.InterfaceError) and seen.__cause__ is None:
            # "the underlying connection is closed": raised by clean-up (a transaction's
            # exit) while the connection's loss was being handled; that loss is what counts.
            seen = seen.__context__
        else:
            seen = seen.__cause__
    return False


async def start_when_available(
    start: Callable[[], Awaitable[T]], *, stop: asyncio.Event, give_up_after: float | None
) -> T | None:
    """`start()`'s result, retried while the database does not answer; None if `stop` is set
    first. Past `give_up_after` seconds (None: never) the last error is raised, as a
    DatabaseUnavailable."""
    started = time.monotonic()
    delay = RETRY_INTERVAL
    waiting = False
    while True:
        try:
            result = await start()
        except Exception as exc:
            if not passing(exc):
                raise
            waited = time.monotonic() - started
            if give_up_after is not None and waited >= give_up_after:
                if isinstance(exc, DatabaseUnavailable):
                    raise
                raise DatabaseUnavailable(f"database unavailable: {one_line(exc)}") from exc
            if not waiting:
                waiting = True
                log.error(
                    "database unavailable at start-up: %s; retrying until it answers "
                    "(/readyz answers 503 meanwhile)",
                    one_line(exc),
                )
            else:
                log.debug("database still unavailable: %s", one_line(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                log.info("stopped while waiting for the database")
                return None
            delay = min(delay * 2, RETRY_CAP)
            continue
        if waiting:
            log.warning("database available: services started")
        return result
