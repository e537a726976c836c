from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from clair_dev import sysdeps
from clair_dev.embedded_pg import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    dsn_with_database,
    ensure_database_sync,
    find_pg_bindir,
)

from tests.fixtures.postgres import (
    DSN_ENV,
    create_test_database,
    docker_engine_answers,
    drop_test_database,
    session_server,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_SERVER_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def fetchval(dsn: str, query: str, *args: Any) -> Any:
    """Run one query (or, without args, a script) from synchronous code, on a loop of its own."""

    async def run() -> Any:
        connection = await asyncpg.connect(dsn)
        try:
            if ";" in query and not args:
                return await connection.execute(query)
            return await connection.fetchval(query, *args)
        finally:
            await connection.close()

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


def accepts_tcp(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Under /tmp rather than tmp_path: the server account must be able to traverse the parents.
    path = Path(tempfile.mkdtemp(prefix="clair-pg-unit-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_find_pg_bindir() -> None:
    bindir = find_pg_bindir()
    assert (bindir / "initdb").exists()
    assert (bindir / "postgres").exists()
    with pytest.raises(EmbeddedPostgresError, match="postgresql"):
        find_pg_bindir(major=999)


def test_start_query_stop_and_restart_keeps_data(workdir: Path) -> None:
    server = EmbeddedPostgres(workdir, fast=True)
    with server:
        dsn = server.dsn
        assert dsn.startswith("postgresql://clair@127.0.0.1:")
        fetchval(dsn, "CREATE TABLE kept (value text); INSERT INTO kept VALUES ('survives')")
        assert fetchval(dsn, "SHOW fsync") == "off"
        assert fetchval(dsn, "SHOW listen_addresses") == "127.0.0.1"
        assert fetchval(server.socket_dsn, "SELECT count(*) FROM kept") == 1
        if os.geteuid() == 0:
            status = Path(f"/proc/{server.pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            assert uid_line.split()[1] != "0"
        port = server.port
    assert not server.running
    assert not accepts_tcp(port)
    assert not (workdir / "pgdata" / "postmaster.pid").exists()

    # A durable restart on the same directory (what `make run` does), on a chosen port.
    with EmbeddedPostgres(workdir, port=port, fast=False) as again:
        assert again.port == port
        assert fetchval(again.dsn, "SELECT value FROM kept") == "survives"
        assert fetchval(again.dsn, "SHOW fsync") == "on"


def test_ensure_database_and_dsn_with_database(workdir: Path) -> None:
    with EmbeddedPostgres(workdir, fast=True) as server:
        assert ensure_database_sync(server.dsn, "clair") is True
        assert ensure_database_sync(server.dsn, "clair") is False
        clair_dsn = dsn_with_database(server.dsn, "clair")
        assert fetchval(clair_dsn, "SELECT current_database()") == "clair"
    assert (
        dsn_with_database("postgresql://u@h:1/postgres?sslmode=disable", "x y")
        == "postgresql://u@h:1/x%20y?sslmode=disable"
    )


def _start_in_child(workdir: Path, ending: str) -> int:
    """Start a server in a child interpreter that then ends with `ending`; the server's pid."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from clair_dev.embedded_pg import EmbeddedPostgres
        server = EmbeddedPostgres(Path({str(workdir)!r}), fast=True)
        server.start()
        print(server.pid, flush=True)
        {ending}
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return int(result.stdout.strip())


def _process_gone(pid: int) -> bool:
    stat_file = Path(f"/proc/{pid}/stat")
    try:
        return stat_file.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_owner_forgetting_stop_still_stops_the_server_at_exit(workdir: Path) -> None:
    assert _process_gone(_start_in_child(workdir, "sys.exit(0)"))


def test_orphan_of_a_killed_owner_is_stopped_and_replaced(workdir: Path) -> None:
    # The owner dies without any cleanup: its server is left running on its own.
    orphan_pid = _start_in_child(workdir, "os._exit(0)")
    assert not _process_gone(orphan_pid)

    with EmbeddedPostgres(workdir, fast=True) as server:
        assert server.pid != orphan_pid
        assert fetchval(server.dsn, "SELECT 1") == 1
        assert _process_gone(orphan_pid)


def test_restart_after_postmaster_was_killed(workdir: Path) -> None:
    first = EmbeddedPostgres(workdir, fast=True)
    first.start()
    fetchval(first.dsn, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)")
    fetchval(first.dsn, "CHECKPOINT")
    os.kill(first.pid, signal.SIGKILL)  # its pid stays a zombie until `first` reaps it
    try:
        with EmbeddedPostgres(workdir, fast=True) as second:
            assert fetchval(second.dsn, "SELECT x FROM t") == 7
    finally:
        first.stop()


def test_pid_file_naming_an_unrelated_live_process(workdir: Path) -> None:
    with EmbeddedPostgres(workdir, fast=True):
        pass
    # Postgres itself takes its parent's pid, or one it may not signal, for stale: the unrelated
    # process must run as the server's account.
    owner = (workdir / "pgdata").stat()
    as_owner: dict[str, Any] = {"user": owner.st_uid, "group": owner.st_gid}
    with subprocess.Popen(["sleep", "60"], **(as_owner if os.geteuid() == 0 else {})) as unrelated:
        try:
            pid_file = workdir / "pgdata" / "postmaster.pid"
            pgdata = workdir / "pgdata"
            pid_file.write_text(f"{unrelated.pid}\n{pgdata}\n0\n5432\n\n\n0 0\nready   \n")
            with EmbeddedPostgres(workdir, fast=True) as server:
                assert fetchval(server.dsn, "SELECT 1") == 1
        finally:
            unrelated.kill()


def test_start_failure_raises_with_server_log(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EmbeddedPostgres(workdir, port=port, fast=True, startup_timeout=20)
        with pytest.raises(EmbeddedPostgresError, match="could not"):
            server.start()
    assert not server.running


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another account")
def test_untraversable_parent_is_reported(workdir: Path) -> None:
    workdir.chmod(0o700)  # as pytest's own tmp root is
    server = EmbeddedPostgres(workdir / "inner" / "pg", fast=True)
    with pytest.raises(EmbeddedPostgresError, match="cannot traverse"):
        server.start()


# -- fixtures ---------------------------------------------------------------------------------


async def test_pg_dsn_isolation_first(pg_dsn: str) -> None:
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute("CREATE TABLE same_name (who text)")
        await connection.execute("INSERT INTO same_name VALUES ('first')")
        assert await connection.fetchval("SELECT array_agg(who) FROM same_name") == ["first"]
    finally:
        await connection.close()


async def test_pg_dsn_isolation_second(pg_dsn: str) -> None:
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute("CREATE TABLE same_name (who text)")
        await connection.execute("INSERT INTO same_name VALUES ('second')")
        assert await connection.fetchval("SELECT array_agg(who) FROM same_name") == ["second"]
    finally:
        await connection.close()


def test_pg_dsn_sync(pg_dsn_sync: str, pg_server_dsn: str) -> None:
    name = fetchval(pg_dsn_sync, "SELECT current_database()")
    assert name.startswith("test_")
    assert fetchval(pg_server_dsn, "SELECT count(*) FROM pg_database WHERE datname=$1", name) == 1


def test_default_server_is_embedded(pg_server_dsn: str) -> None:
    if os.environ.get(DSN_ENV) or docker_engine_answers(os.environ):
        pytest.skip("session server comes from CLAIR_TEST_DSN or Docker")
    assert fetchval(pg_server_dsn, "SELECT current_user") == "clair"
    data_directory = fetchval(pg_server_dsn, "SELECT current_setting('data_directory')")
    assert Path(data_directory).parent.name.startswith("clair-test-pg-")


def _external_server(fallback: str) -> str:
    """The machine's own server when one answers on 5432, else (on a bare machine) ours."""
    try:
        fetchval(LOCAL_SERVER_DSN, "SELECT 1")
    except (OSError, asyncpg.PostgresError):
        return fallback
    return LOCAL_SERVER_DSN


def test_dsn_from_environment_is_used_as_is(pg_server_dsn: str, tmp_path: Path) -> None:
    external = _external_server(pg_server_dsn)
    with session_server({DSN_ENV: external}) as dsn:
        assert dsn == external

    # The whole plugin in a pytest run of its own, with only the environment pointing it there.
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\n"
        "asyncio_default_test_loop_scope = session\nfilterwarnings = error\n"
    )
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import os
            from pathlib import Path
            import asyncpg

            async def test_inner(pg_server_dsn, pg_dsn):
                assert pg_server_dsn == os.environ["CLAIR_TEST_DSN"]
                connection = await asyncpg.connect(pg_dsn)
                name = await connection.fetchval("SELECT current_database()")
                await connection.close()
                Path(os.environ["INNER_DB_NAME_FILE"]).write_text(name)
            """
        )
    )
    name_file = tmp_path / "database-name"
    env = {**os.environ, DSN_ENV: external, "INNER_DB_NAME_FILE": str(name_file)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.fixtures.postgres",
         "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
         "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    name = name_file.read_text()
    assert name.startswith("test_")
    assert fetchval(external, "SELECT count(*) FROM pg_database WHERE datname=$1", name) == 0


async def test_create_and_drop_test_database_with_open_connection(pg_server_dsn: str) -> None:
    dsn = await create_test_database(pg_server_dsn)
    lingering = await asyncpg.connect(dsn)  # a test that forgot to close its pool
    await drop_test_database(pg_server_dsn, dsn)
    assert lingering.is_closed() or not await _alive(lingering)
    await lingering.close()


async def _alive(connection: asyncpg.Connection) -> bool:
    try:
        await connection.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True


# -- docker detection and system dependencies -------------------------------------------------


class _PingHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"OK" if self.path == "/_ping" else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_docker_engine_detection(tmp_path: Path) -> None:
    socket_path = tmp_path / "docker.sock"
    assert not docker_engine_answers({"DOCKER_HOST": f"unix://{socket_path}"})
    with socketserver.UnixStreamServer(str(socket_path), _PingHandler) as engine:
        thread = threading.Thread(target=engine.serve_forever, daemon=True)
        thread.start()
        try:
            assert docker_engine_answers({"DOCKER_HOST": f"unix://{socket_path}"})
            assert not docker_engine_answers(
                {"DOCKER_HOST": f"unix://{socket_path}", "CLAIR_TEST_DOCKER": "0"}
            )
        finally:
            engine.shutdown()
            thread.join()


def test_sysdeps_runs_as_plain_script_and_finds_postgres() -> None:
    script = REPO_ROOT / "devtools" / "clair_dev" / "sysdeps.py"
    result = subprocess.run(
        [sys.executable, "-I", str(script), "--check-only"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert len(lines) == len(sysdeps.SYSTEM_TOOLS), result.stdout + result.stderr
    postgres_line = next(line for line in lines if "PostgreSQL server" in line)
    assert "found" in postgres_line
    missing = [line for line in lines if "MISSING" in line]
    assert (result.returncode == 0) == (not missing), result.stderr
    if missing:
        assert "apt-get install -y --no-install-recommends" in result.stderr
