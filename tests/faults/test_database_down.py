"""PostgreSQL stopped or frozen under a real `clair serve`: database routes answer 503 with
Clair's error body (not 500, not a hang), /readyz turns 503 and back to 200 when the database
returns, and the log says so once per change of state instead of a traceback per request.
The database is a private cluster of this test's own, which it stops and freezes (SIGSTOP)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from clair_dev.embedded_pg import EmbeddedPostgres, dsn_with_database, ensure_database_sync

from tests.fixtures.server import ClairProcess, clair_server, free_port, wait_ready

REPORT = "/indexer/api/v1/index_report/sha256:" + "ab" * 32


@pytest.fixture
def private_pg() -> Iterator[EmbeddedPostgres]:
    workdir = Path(tempfile.mkdtemp(prefix="clair-test-pg-down-"))
    workdir.chmod(0o755)  # the server account must traverse it when tests run as root
    # Unix socket only: its restart cannot find a TCP port taken by another test meanwhile.
    settings = {"listen_addresses": ""}
    server = EmbeddedPostgres(workdir, port=free_port(), fast=True, settings=settings)
    try:
        server.start()
        yield server
    finally:
        if server.running:
            signal_cluster(server, signal.SIGCONT)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def signal_cluster(server: EmbeddedPostgres, sig: signal.Signals) -> None:
    """`sig` to the postmaster and every backend (backends lead process groups of their own)."""
    pids = [server.pid]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (proc / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == server.pid:  # field 4: ppid
                    pids.append(int(proc.name))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def get(url: str, timeout: float = 20) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def until(predicate: object, what: str, timeout: float = 20) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not {what} after {timeout}s")


def readyz(clair: ClairProcess) -> int:
    return get(clair.introspection + "/readyz", timeout=5)[0]


def assert_503(clair: ClairProcess) -> None:
    started = time.monotonic()
    status, body = get(clair.api + REPORT)
    assert status == 503, body
    assert b'"code":"internal-error"' in body.replace(b" ", b"")
    assert b"unavailable" in body
    assert time.monotonic() - started < 10  # answered, not left hanging


@pytest.fixture
def server(private_pg: EmbeddedPostgres, tmp_path: Path) -> Iterator[ClairProcess]:
    dsn = dsn_with_database(private_pg.socket_dsn, "clair")
    ensure_database_sync(private_pg.socket_dsn, "clair")
    env = {
        "CLAIR_INDEXER__CONNSTRING": dsn,
        "CLAIR_INDEXER__MIGRATIONS": "true",
        "CLAIR_DATABASE_CONNECT_TIMEOUT": "2s",
        "CLAIR_DATABASE_STATEMENT_TIMEOUT": "3s",
    }
    with clair_server(tmp_path, mode="indexer", env=env) as clair:
        wait_ready(clair)
        yield clair


def test_stopped_database(server: ClairProcess, private_pg: EmbeddedPostgres) -> None:
    assert get(server.api + REPORT)[0] == 404
    private_pg.stop()
    until(lambda: readyz(server) == 503, "unready")
    for _ in range(20):
        assert_503(server)
    private_pg.start()
    until(lambda: readyz(server) == 200, "ready again")
    assert get(server.api + REPORT)[0] == 404
    log = server.log_text()
    assert log.count("database unavailable:") == 1, log
    assert log.count("database available again") == 1, log
    assert "Traceback" not in log


def test_frozen_database(server: ClairProcess, private_pg: EmbeddedPostgres) -> None:
    assert get(server.api + REPORT)[0] == 404
    signal_cluster(private_pg, signal.SIGSTOP)
    try:
        assert_503(server)  # in flight when frozen: cut off by the statement timeout
        until(lambda: readyz(server) == 503, "unready")
        assert_503(server)  # once known down: answered at once
    finally:
        signal_cluster(private_pg, signal.SIGCONT)
    until(lambda: readyz(server) == 200, "ready again")
    assert get(server.api + REPORT)[0] == 404
    assert "Traceback" not in server.log_text()
