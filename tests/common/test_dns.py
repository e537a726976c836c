"""Name resolution on daemon threads (clair_common.dns)."""

from __future__ import annotations

import socket
import threading

from clair_common.dns import DaemonThreadResolver, DaemonThreads
from clair_common.tls import client_session
from tests.fixtures.feeds import FeedServer


async def test_localhost_resolves_as_aiohttp_expects() -> None:
    hosts = await DaemonThreadResolver().resolve("localhost", 8080, socket.AF_UNSPEC)
    assert hosts, "localhost did not resolve"
    assert {h["host"] for h in hosts} <= {"127.0.0.1", "::1"}
    assert all(h["hostname"] == "localhost" and h["port"] == 8080 for h in hosts)


async def test_sessions_connect_by_name(feed_server: FeedServer) -> None:
    feed_server.put("hello", b"world")
    url = feed_server.url.replace("127.0.0.1", "localhost") + "hello"
    async with client_session() as http, http.get(url) as resp:
        assert (resp.status, await resp.read()) == (200, b"world")


def test_lookups_run_on_daemon_threads_that_report_errors() -> None:
    pool = DaemonThreads(workers=2)
    assert pool.submit(threading.current_thread).result().daemon
    failed = pool.submit(socket.getaddrinfo, "no such host.invalid", 80)
    assert isinstance(failed.exception(), OSError)
