"""Which start-up errors `clair serve` waits out, and how the waiting ends (no database here:
the errors are the ones asyncpg and the pool raise; tests/faults/test_database_startup.py
shows the whole thing against a real PostgreSQL started late)."""

from __future__ import annotations

import asyncio
import ssl

import asyncpg
import pytest

from clair_common.db import startup
from clair_common.db.pool import DatabaseUnavailable
from clair_common.db.startup import passing, start_when_available


def wrapped(cause: BaseException) -> DatabaseUnavailable:
    try:
        raise DatabaseUnavailable("indexer.connstring: cannot connect to PostgreSQL") from cause
    except DatabaseUnavailable as exc:
        return exc


def closed_mid_transaction() -> BaseException:
    """What a migration's transaction raises when the server went away under it."""
    try:
        try:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        except asyncpg.ConnectionDoesNotExistError:
            raise asyncpg.InterfaceError("the underlying connection is closed")  # noqa: B904 (as asyncpg)
    except asyncpg.InterfaceError as exc:
        error: BaseException = exc
        return error


@pytest.mark.parametrize(
    "exc",
    [
        wrapped(ConnectionRefusedError(111, "Connection refused")),
        wrapped(TimeoutError()),
        wrapped(asyncpg.CannotConnectNowError("the database system is starting up")),
        wrapped(asyncpg.InvalidCatalogNameError('database "clair" does not exist')),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        closed_mid_transaction(),
    ],
)
def test_a_database_not_there_yet_is_waited_for(exc: BaseException) -> None:
    assert passing(exc)


@pytest.mark.parametrize(
    "exc",
    [
        wrapped(asyncpg.InvalidPasswordError("password authentication failed")),
        wrapped(ssl.SSLCertVerificationError("certificate verify failed")),
        DatabaseUnavailable("indexer.connstring: could not match 2 port numbers to 1 hosts"),
        asyncpg.UndefinedTableError("relation does not exist"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        RuntimeError("a bug"),
    ],
)
def test_configuration_errors_and_bugs_are_not(exc: BaseException) -> None:
    assert not passing(exc)


async def test_retries_until_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "RETRY_INTERVAL", 0.01)
    failures = [wrapped(ConnectionRefusedError()), wrapped(ConnectionRefusedError())]

    async def start() -> str:
        if failures:
            raise failures.pop()
        return "started"

    got = await start_when_available(start, stop=asyncio.Event(), give_up_after=None)
    assert got == "started"


async def test_a_lasting_error_is_raised_at_once() -> None:
    async def start() -> str:
        raise wrapped(asyncpg.InvalidPasswordError("password authentication failed"))

    with pytest.raises(DatabaseUnavailable):
        await start_when_available(start, stop=asyncio.Event(), give_up_after=None)


async def test_stop_ends_the_wait() -> None:
    stop = asyncio.Event()

    async def start() -> str:
        stop.set()  # SIGTERM while the database is away
        raise wrapped(ConnectionRefusedError())

    assert await start_when_available(start, stop=stop, give_up_after=None) is None


async def test_gives_up_after_the_startup_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "RETRY_INTERVAL", 0.01)

    async def start() -> str:
        raise asyncpg.AdminShutdownError("terminating connection")

    with pytest.raises(DatabaseUnavailable, match="terminating connection"):
        await start_when_available(start, stop=asyncio.Event(), give_up_after=0.05)
