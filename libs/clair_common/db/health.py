"""Is the database answering? A probe loop per `clair serve` that flips readiness, gates the
database routes with a quick 503, and logs one line per change of state (not one traceback
per failed request), and the errors that mean "the database is unavailable"."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import asyncpg
from starlette.types import ASGIApp, Receive, Scope, Send

from clair_common.aio import cancel_and_wait
from clair_common.db.pool import DatabaseUnavailable, connect
from clair_common.errors import one_line
from clair_common.http.errors import error_response

log = logging.getLogger("clair.db")

PROBE_INTERVAL = 1.0  # seconds between probes of each database


def _not_a_floor_retry(record: logging.LogRecord) -> bool:
    # asyncpg logs a traceback each time it fails to reopen a pool's minimum connections;
    # during an outage that repeats what the monitor already said once.
    return not str(record.msg).startswith("Failed to restore the pool connection floor")


logging.getLogger("asyncpg.pool").addFilter(_not_a_floor_retry)


# Errors of a database that is down, restarting, frozen or unreachable (not of bad SQL).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, unreachable (asyncpg's connect raises plain OSError too)
    TimeoutError,  # connect or statement timeout on the client side
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.QueryCanceledError,  # statement_timeout on the server side
    DatabaseUnavailable,
)


class DatabaseMonitor:
    """Probes each DSN with a fresh connection and `SELECT 1`; `up` is the last verdict."""

    def __init__(
        self,
        dsns: Sequence[tuple[str, str | None]],
        *,
        timeout: float,
        interval: float = PROBE_INTERVAL,
    ) -> None:
        """`dsns`: (config key, DSN) pairs; the key is named in the log line, a DSN given by
        several keys is probed once, under the first; None stands for libpq's PG* environment."""
        self.dsns: dict[str | None, str] = {}
        for key, dsn in dsns:
            self.dsns.setdefault(dsn, key)
        self.timeout = timeout
        self.interval = interval
        self.up = True  # services started, so it answered a moment ago
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.dsns and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="clair-db")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _loop(self) -> None:
        while True:
            problem = None
            for dsn, key in self.dsns.items():
                # The probe runs as a task of its own and is waited for with asyncio.wait, so
                # cancelling this loop (at shutdown) is immediate even mid-connect, where
                # asyncpg's own timeout handling can hold a cancellation back.
                probe = asyncio.ensure_future(self._probe(dsn, key))
                try:
                    done, _ = await asyncio.wait({probe}, timeout=self.timeout + 1)
                finally:
                    if not probe.done():
                        probe.cancel()
                problem = probe.result() if done else f"{key}: no answer within {self.timeout:g}s"
                if problem is not None:
                    break
            if problem is not None and self.up:
                log.error("database unavailable: %s; database routes answer 503", problem)
            elif problem is None and not self.up:
                log.warning("database available again")
            self.up = problem is None
            await asyncio.sleep(self.interval)

    async def _probe(self, dsn: str | None, key: str) -> str | None:
        conn: asyncpg.Connection | None = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = await connect(dsn, application_name="clair-probe", key=key)
                await conn.fetchval("SELECT 1")
                await conn.close()
                conn = None
            return None
        except Exception as exc:
            return one_line(exc)
        finally:
            if conn is not None:
                conn.terminate()  # a frozen server would never acknowledge a polite close


UNAVAILABLE_MESSAGE = "database unavailable"
_GATED_PREFIXES = ("/indexer/", "/matcher/", "/notifier/")


class DatabaseGateMiddleware:
    """While `is_up()` is False, API routes answer 503 at once instead of waiting on a
    database that does not answer; discovery routes (`/openapi/v1`, `/robots.txt`) still work."""

    def __init__(self, app: ASGIApp, is_up: Callable[[], bool] | None) -> None:
        self.app = app
        self.is_up = is_up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.is_up is not None
            and not self.is_up()
            and scope["path"].startswith(_GATED_PREFIXES)
        ):
            await error_response(503, UNAVAILABLE_MESSAGE)(scope, receive, send)
            return
        await self.app(scope, receive, send)
