"""SIGTERM on a real `clair serve`: the listener closes at once (new connections are refused,
not queued to hang), in-flight requests finish within `shutdown_grace_period`, and a request
that would outlast the grace period does not keep the process alive."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.fixtures.faulty import FaultyOrigin
from tests.fixtures.images import build_layer, sha256_digest
from tests.fixtures.server import ClairProcess, clair_server, wait_ready


@contextmanager
def indexer(pg_dsn: str, workdir: Path, grace: str) -> Iterator[ClairProcess]:
    env = {
        "CLAIR_INDEXER__CONNSTRING": pg_dsn,
        "CLAIR_INDEXER__MIGRATIONS": "true",
        "CLAIR_SHUTDOWN_GRACE_PERIOD": grace,
    }
    with clair_server(workdir, mode="indexer", env=env) as clair:
        wait_ready(clair)
        yield clair


def manifest(n: int, blob: bytes, uri: str) -> dict[str, object]:
    return {
        "hash": "sha256:" + f"{n:02x}" * 32,
        "layers": [{"hash": sha256_digest(blob), "uri": uri}],
    }


async def until_in_flight(origin: FaultyOrigin) -> None:
    await asyncio.wait_for(origin.arrived.wait(), 30)


def port_of(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def test_sigterm_refuses_new_connections_and_drains(
    pg_dsn: str, tmp_path: Path, faulty_origin: FaultyOrigin
) -> None:
    blob = build_layer({"etc/os-release": b'ID=debian\nVERSION_ID="12"\n' * 20})
    uri = faulty_origin.drip("/slow", blob, every=0.05, size=max(1, len(blob) // 30))
    with indexer(pg_dsn, tmp_path, grace="30s") as clair:
        async with httpx.AsyncClient(base_url=clair.api, timeout=60) as http:
            posted = asyncio.create_task(
                http.post("/indexer/api/v1/index_report", json=manifest(1, blob, uri))
            )
            await until_in_flight(faulty_origin)
            clair.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(port_of(clair.api), timeout=2).close()
            resp = await posted
        assert resp.status_code == 201, resp.text
        assert resp.json()["state"] == "IndexFinished"
        assert await asyncio.to_thread(clair.proc.wait, 30) == 0, clair.log_text()


async def test_requests_past_the_grace_period_do_not_hold_the_process(
    pg_dsn: str, tmp_path: Path, faulty_origin: FaultyOrigin
) -> None:
    blob = build_layer({"etc/hostname": b"x"})
    uri = faulty_origin.hang("/never")
    with indexer(pg_dsn, tmp_path, grace="1s") as clair:
        async with httpx.AsyncClient(base_url=clair.api, timeout=60) as http:
            posted = asyncio.create_task(
                http.post("/indexer/api/v1/index_report", json=manifest(2, blob, uri))
            )
            await until_in_flight(faulty_origin)
            clair.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(clair.proc.wait, 15)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running 15 s after SIGTERM:\n{clair.log_text()}")
            # The cut-off request got an answer or a closed connection, never a hang.
            try:
                resp = await asyncio.wait_for(posted, 5)
                assert resp.status_code >= 500
            except httpx.TransportError:
                pass
