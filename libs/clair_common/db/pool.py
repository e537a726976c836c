"""asyncpg pools: one per service, confined to the service's schema, with pool metrics."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from clair_common.config.connstring import ConnStringError
from clair_common.db.connect import connect_options
from clair_common.db.poolstats import MeteredPool, register_pool


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


async def _keep_session(_: asyncpg.Connection) -> None:
    """Pool connections never change session state (no SET, LISTEN or session locks: those
    use dedicated connections), so the full RESET ALL round trip on every release is skipped.
    asyncpg still rolls back a transaction left open."""


class DatabaseUnavailable(RuntimeError):
    """The database a service is configured for cannot be reached or refuses the login; the
    message names the config key, for a one-line start-up error."""


def _unavailable(key: str, err: BaseException) -> DatabaseUnavailable:
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return DatabaseUnavailable(f"{key}: cannot connect to PostgreSQL: {detail}")


async def connect(dsn: str | None, *, application_name: str, key: str) -> asyncpg.Connection:
    """One connection with the same meaning of `dsn` as the pools (`key`: the config key that
    gave `dsn`, named in errors, e.g. `indexer.database.postgresql.dsn`)."""
    try:
        options = connect_options(dsn, application_name=application_name)
        conn: asyncpg.Connection = await asyncpg.connect(**options.kwargs)
    except ConnStringError as err:
        raise DatabaseUnavailable(f"{key}: {err}") from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
        raise _unavailable(key, err) from err
    return conn


async def create_pool(
    dsn: str | None,
    *,
    schema: str,
    application_name: str,
    min_size: int = 1,
    max_size: int = 20,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
    key: str | None = None,
) -> asyncpg.Pool:
    """A pool whose connections see `schema` first; dsn None or "" uses libpq's PG* environment.
    `key`, the config key that gave `dsn`, is named in errors (default `<schema>.connstring`).

    The connection string's `pool_max_conns`/`pool_min_conns` win over the sizes given here,
    its `connect_timeout` and `statement_timeout` over the timeouts (seconds, None: none).
    A statement timeout bounds every statement twice: PostgreSQL cancels it, and the client
    gives up on a server that stopped answering.
    """
    key = key or f"{schema}.connstring"
    try:
        options = connect_options(
            dsn,
            application_name=application_name,
            server_settings={"search_path": f"{schema},public"},
        )
    except ConnStringError as err:
        raise DatabaseUnavailable(f"{key}: {err}") from None
    sizing = options.settings.pool
    max_size = sizing.max_conns or max_size
    min_size = min(sizing.min_conns if sizing.min_conns is not None else min_size, max_size)
    idle = sizing.max_conn_idle_time
    kwargs = dict(options.kwargs)
    if connect_timeout and "timeout" not in kwargs:
        kwargs["timeout"] = connect_timeout
    if statement_timeout:
        settings = kwargs["server_settings"] = dict(kwargs.get("server_settings") or {})
        settings.setdefault("statement_timeout", str(int(statement_timeout * 1000)))
        kwargs["command_timeout"] = int(settings["statement_timeout"]) / 1000 or None
    try:
        pool = await MeteredPool(
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            **({"max_inactive_connection_lifetime": idle.total_seconds()} if idle else {}),
            **kwargs,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
        raise _unavailable(key, err) from err
    register_pool(application_name, pool)
    return pool


def pool_timeouts(config: Any) -> dict[str, Any]:
    """`create_pool` keyword arguments from a validated Config's database timeouts."""
    return {
        "connect_timeout": config.database_connect_timeout.total_seconds() or None,
        "statement_timeout": config.database_statement_timeout.total_seconds() or None,
    }
