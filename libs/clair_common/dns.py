"""Name resolution for the HTTP clients, on daemon threads.

aiohttp resolves names with getaddrinfo on the event loop's default executor, whose threads the
interpreter joins at exit. Where DNS does not answer (an airgapped site, a black-holed
resolver), a lookup in flight at SIGTERM held the process for the resolver's whole timeout
after everything else had stopped (4.9 s, against a 10 s grace period). These threads are
daemons: nothing waits for a lookup nobody needs any more.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

WORKERS = 8
_NUMERIC = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV


class DaemonThreads(concurrent.futures.Executor):
    """A fixed pool of daemon threads, started on first use."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._workers = workers
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]]
        self._queue = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((future, functools.partial(fn, *args, **kwargs)))
        with self._lock:
            if not self._started:
                self._started = True
                for n in range(self._workers):
                    threading.Thread(target=self._work, name=f"dns-{n}", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            future, call = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the waiting coroutine
                future.set_exception(exc)


_THREADS = DaemonThreads()


class DaemonThreadResolver(AbstractResolver):
    """aiohttp's threaded resolver, on `DaemonThreads`."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        lookup = functools.partial(
            socket.getaddrinfo, host, port, family, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG
        )
        infos = await loop.run_in_executor(_THREADS, lookup)
        hosts: list[ResolveResult] = []
        for found, _, proto, _, address in infos:
            if found == socket.AF_INET6:
                if len(address) < 3:
                    continue  # no IPv6 in this Python build or host
                if address[3]:  # link-local: the scope needs the name form
                    name, service = await loop.run_in_executor(
                        _THREADS, socket.getnameinfo, address, _NUMERIC
                    )
                    resolved, resolved_port = name, int(service)
                else:
                    resolved, resolved_port = str(address[0]), int(address[1])
            else:
                resolved, resolved_port = str(address[0]), int(address[1])
            hosts.append(
                ResolveResult(
                    hostname=host,
                    host=resolved,
                    port=resolved_port,
                    family=found,
                    proto=proto,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        return hosts

    async def close(self) -> None:
        pass
