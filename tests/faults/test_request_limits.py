"""Caps on what one client can make the server hold: body size (`http_max_body_bytes`), layers
per manifest (`indexer.max_manifest_layers`) and the time to send the first request's headers
(`http_header_timeout`, against a real `clair serve` process)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.combo import Combo, running_combo
from tests.fixtures.server import ClairProcess, clair_server, wait_ready

INDEX_URL = "/indexer/api/v1/index_report"
AFFECTED_URL = "/indexer/api/v1/internal/affected_manifest/"
LIMIT = 64 * 1024


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Combo]:
    limits = {"http_max_body_bytes": LIMIT, "indexer": {"max_manifest_layers": 5}}
    async with running_combo(pg_dsn, tmp_path / "cache", extra_config=limits) as c:
        yield c


def manifest(n: int, layers: int) -> dict[str, Any]:
    return {
        "hash": "sha256:" + f"{n:02x}" * 32,
        "layers": [
            {"hash": "sha256:" + f"{i:064x}", "uri": f"http://127.0.0.1:9/{i}"}
            for i in range(layers)
        ],
    }


def assert_too_large(status: int, body: dict[str, Any]) -> None:
    assert status == 413, body
    assert body == {
        "code": "bad-request",
        "message": f"request body too large: the limit is {LIMIT} bytes",
    }


async def test_declared_oversized_body_is_refused(combo: Combo) -> None:
    padding = {"padding": "x" * (LIMIT + 1), **manifest(1, 1)}
    resp = await combo.client.post(INDEX_URL, json=padding)
    assert_too_large(resp.status_code, resp.json())
    resp = await combo.client.post(AFFECTED_URL, json={"vulnerabilities": [{"x": "y" * LIMIT}]})
    assert_too_large(resp.status_code, resp.json())


async def test_streamed_oversized_body_is_cut_off(combo: Combo) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"hash": "sha256:' + b"0" * 64 + b'", "padding": "'
        for _ in range(1000):  # 16 MiB if all were read
            sent += 1
            yield b"y" * (16 * 1024)
        yield b'"}'

    resp = await combo.client.post(INDEX_URL, content=chunks())  # chunked: no Content-Length
    assert_too_large(resp.status_code, resp.json())


async def test_bodies_under_the_limit_still_work(combo: Combo) -> None:
    resp = await combo.client.post(AFFECTED_URL, json={"vulnerabilities": []})
    assert resp.status_code == 200, resp.text


async def test_too_many_layers_is_a_bogus_manifest(combo: Combo) -> None:
    doc = manifest(2, 6)
    resp = await combo.client.post(INDEX_URL, json=doc)
    assert resp.status_code == 400, resp.text
    assert resp.json() == {
        "code": "bad-request",
        "message": "bogus manifest: 6 layers, more than the limit of 5",
    }
    stored = await combo.client.get(f"{INDEX_URL}/{doc['hash']}")
    assert stored.status_code == 404  # refused before anything was stored


# -- header timeout against a real server ------------------------------------------------------


@pytest.fixture
def server(pg_dsn: str, tmp_path: Path) -> Iterator[ClairProcess]:
    env = {
        "CLAIR_INDEXER__CONNSTRING": pg_dsn,
        "CLAIR_INDEXER__MIGRATIONS": "true",
        "CLAIR_HTTP_HEADER_TIMEOUT": "1s",
    }
    with clair_server(tmp_path, mode="indexer", env=env) as clair:
        wait_ready(clair)
        yield clair


def _api_address(clair: ClairProcess) -> tuple[str, int]:
    host, port = clair.api.removeprefix("http://").split(":")
    return host, int(port)


async def test_slow_headers_are_cut_off(server: ClairProcess) -> None:
    """A slowloris (headers a byte at a time, never finished) loses its connections."""

    def slowloris(sock: socket.socket) -> bytes:
        sock.sendall(b"GET /indexer/api/v1/index_state HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + 15
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"X")
                got = sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return b""
            return got  # b"" when the server closed the connection
        return b"still open"

    address = _api_address(server)
    sockets = [socket.create_connection(address, timeout=5) for _ in range(20)]
    try:
        results = await asyncio.gather(*(asyncio.to_thread(slowloris, s) for s in sockets))
    finally:
        for sock in sockets:
            sock.close()
    assert set(results) <= {b""}, results[:3]
    # The server still serves well-behaved clients afterwards.
    with socket.create_connection(address, timeout=5) as ok:
        ok.sendall(b"GET /indexer/api/v1/index_state HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ok.recv(4096).startswith(b"HTTP/1.1 200")


def close_wait_sockets(port: int) -> int:
    """Server-side sockets on `port` whose client has closed (state 08 in /proc/net/tcp)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "08":
                    count += 1
    return count


def test_closed_client_connections_are_released(server: ClairProcess) -> None:
    """Keep-alive connections their clients closed are let go at once, not held (CLOSE-WAIT)
    until the keep-alive timeout: under load they were descriptors growing round after round."""
    address = _api_address(server)
    for _ in range(20):
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(b"GET /indexer/api/v1/index_state HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 5
    while close_wait_sockets(address[1]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert close_wait_sockets(address[1]) == 0
