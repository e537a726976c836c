"""PostgreSQL missing at start-up or lost in the middle of the migrations, under a real
`clair serve`: the process waits instead of exiting (/healthz 200, /readyz 503), says so in one
line, and migrates and serves once the database is there; a migration cut off half-way leaves
nothing of itself behind, and the next start applies it. The database is a private cluster of
the test's own, started after the service and stopped under it."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from clair_dev.embedded_pg import EmbeddedPostgres, dsn_with_database, ensure_database_sync

from clair_common.db.migrate import migrate
from tests.faults.test_database_down import get, until
from tests.fixtures.server import ClairProcess, clair_server, free_port, wait_ready

# Unix socket only: a restart cannot find its TCP port taken by another test meanwhile.
SOCKET_ONLY = {"listen_addresses": ""}
REPORT = "/indexer/api/v1/index_report/sha256:" + "ab" * 32
UPDATES = "/matcher/api/v1/internal/update_operation"


@pytest.fixture
def stopped_pg() -> Iterator[EmbeddedPostgres]:
    """A cluster with a `clair` database, stopped; its socket stays, so a DSN names it."""
    workdir = Path(tempfile.mkdtemp(prefix="clair-test-pg-late-"))
    workdir.chmod(0o755)  # the server account must traverse it when tests run as root
    server = EmbeddedPostgres(workdir, port=free_port(), fast=True, settings=SOCKET_ONLY)
    try:
        server.start()
        ensure_database_sync(server.socket_dsn, "clair")
        server.stop()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def clair_dsn(pg: EmbeddedPostgres) -> str:
    return dsn_with_database(pg.socket_dsn, "clair")


def env_for(mode: str, dsn: str) -> dict[str, str]:
    env = {
        "CLAIR_DATABASE_CONNECT_TIMEOUT": "2s",
        "CLAIR_MATCHER__DISABLE_UPDATERS": "true",
        "CLAIR_MATCHER__INDEXER_ADDR": f"http://127.0.0.1:{free_port()}",
    }
    for service in ("indexer", "matcher") if mode == "combo" else (mode,):
        env[f"CLAIR_{service.upper()}__CONNSTRING"] = dsn
        env[f"CLAIR_{service.upper()}__MIGRATIONS"] = "true"
    return env


def status(url: str) -> int:
    try:
        return get(url, timeout=5)[0]
    except OSError:
        return 0  # not listening (yet)


def assert_waiting(clair: ClairProcess) -> None:
    until(lambda: status(clair.introspection + "/healthz") == 200, "answering /healthz")
    until(lambda: "database unavailable at start-up" in clair.log_text(), "waiting")
    assert status(clair.introspection + "/readyz") == 503
    assert clair.proc.poll() is None, clair.log_text()


def assert_one_line_per_change(log: str) -> None:
    assert log.count("database unavailable at start-up") == 1, log
    assert log.count("database available: services started") == 1, log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("mode", ["combo", "indexer"])
def test_database_started_after_the_service(
    mode: str, stopped_pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    with clair_server(tmp_path, mode=mode, env=env_for(mode, clair_dsn(stopped_pg))) as clair:
        assert_waiting(clair)
        stopped_pg.start()
        wait_ready(clair)
        assert get(clair.api + REPORT)[0] == 404  # migrated: the tables answer
        if mode == "combo":
            assert get(clair.api + UPDATES)[0] == 200
        assert_one_line_per_change(clair.log_text())


async def _hold_table_lock(dsn: str, table: str, locked: asyncio.Event) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            locked.set()
            await asyncio.Event().wait()  # until the server goes away under us
    finally:
        conn.terminate()


async def _migration_blocked(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        waiting: bool = await conn.fetchval(
            "SELECT count(*) > 0 FROM pg_stat_activity"
            " WHERE application_name = 'clair-migrate' AND wait_event_type = 'Lock'"
        )
        return waiting
    finally:
        await conn.close()


async def _schema(dsn: str) -> tuple[list[int], bool]:
    """Matcher migrations recorded, and whether migration 3's function exists."""
    conn = await asyncpg.connect(dsn)
    try:
        versions = [
            r["version"] for r in await conn.fetch("SELECT version FROM matcher.migrations")
        ]
        function = await conn.fetchval(
            "SELECT count(*) > 0 FROM pg_proc WHERE proname = 'notify_latest_update_operation'"
        )
        return sorted(versions), bool(function)
    finally:
        await conn.close()


async def test_database_lost_in_the_middle_of_a_migration(
    stopped_pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    """An upgrade: the database holds the previous release's matcher schema (migrations 1-2).
    Migration 3 creates a function, then a trigger on a table the test holds locked: the
    server is stopped right there, between the two statements of one migration."""
    stopped_pg.start()
    dsn = clair_dsn(stopped_pg)
    await migrate(dsn, "matcher", "clair_matcher", up_to=2)
    locked = asyncio.Event()
    holder = asyncio.create_task(_hold_table_lock(dsn, "matcher.latest_update_operation", locked))
    await locked.wait()
    env = env_for("matcher", dsn)
    with clair_server(tmp_path, mode="matcher", env=env, name="first") as first:
        for _ in range(600):
            if await _migration_blocked(dsn):
                break
            assert first.proc.poll() is None, first.log_text()
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"migration 3 never blocked:\n{first.log_text()}")
        await asyncio.to_thread(stopped_pg.stop)
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        await asyncio.to_thread(assert_waiting, first)
        first.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.proc.wait, 30) == 0, first.log_text()
        assert "Traceback" not in first.log_text()

    stopped_pg.start()
    assert await _schema(dsn) == ([1, 2], False)  # nothing of migration 3 was kept
    with clair_server(tmp_path, mode="matcher", env=env, name="second") as second:
        await asyncio.to_thread(wait_ready, second)
        assert "Traceback" not in second.log_text()
    assert await _schema(dsn) == ([1, 2, 3], True)
