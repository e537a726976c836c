"""`clair serve`: start the services of a mode, the API listener and the introspection listener."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from hypercorn.asyncio import run as hypercorn_run
from hypercorn.asyncio import serve
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Event, Updated

from clair_common.clients import Indexer, Matcher
from clair_common.config.views import service_view
from clair_common.db.health import DatabaseMonitor
from clair_common.db.startup import start_when_available
from clair_common.http.app import build_api_app
from clair_common.http.introspection import Readiness, build_introspection_app
from clair_common.runtime import SERVICE_ORDER, Service, ServiceContext, load_starter
from clair_common.tls import client_context

log = logging.getLogger("clair.server")

MODES = ("combo", "indexer", "matcher", "notifier")


@dataclass(slots=True)
class ServeOptions:
    mode: str
    config: Any  # clair_common.config.Config


class ListenError(Exception):
    """A listen address that cannot be bound (in use, not this host's, no permission)."""


def bind_socket(addr: str, key: str, *, listen: bool = True) -> socket.socket:
    """A bound socket, listening unless `listen` is false; Go's ":6060" means every interface.

    Bound before the server task starts, so `/readyz` never promises a port not yet open.
    Bound but not yet listening, a port is held while connections to it are still refused.
    """
    from clair_common.config import split_host_port

    host, port = split_host_port(addr)
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ListenError(f"{key}: cannot listen on {addr}: {err.strerror or err}") from None
    if listen:
        sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class _HeaderTimedServer(TCPServer):
    """Hypercorn's connection handler with a deadline on the first request's headers, that
    lets go of connections their clients closed.

    Hypercorn's idle timer (`keep_alive_timeout`) runs from accept until a request starts and
    is not reset by partial header bytes, so a client trickling headers held a connection for
    the whole keep-alive time; here that first wait is `http_header_timeout` instead.
    """

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated) and not event.idle:
            self._clair_request_seen = True
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        await super()._read_data()
        # The client closed its end: Hypercorn would keep the socket (CLOSE-WAIT) until the
        # idle timer ran out, up to `keep_alive_timeout`; end that timer now.
        await self.idle_task.stop()

    async def _idle_timeout(self) -> None:
        header_timeout = getattr(self.config, "clair_header_timeout", None)
        if header_timeout is None or getattr(self, "_clair_request_seen", False):
            await super()._idle_timeout()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.context.terminated.wait(), header_timeout)
        await asyncio.shield(self._initiate_server_close())


# `serve` builds its connection handlers from this module attribute.
vars(hypercorn_run)["TCPServer"] = _HeaderTimedServer


def _hypercorn_config(sock: socket.socket, shared: Any) -> HypercornConfig:
    cfg = HypercornConfig()
    # Hypercorn owns the listening socket from here and closes it when shutdown starts, so
    # connections after SIGTERM are refused at once (a duplicate kept by us stayed listening
    # through the drain: the kernel queued new connections nobody would accept).
    cfg.bind = [f"fd://{sock.detach()}"]
    cfg.accesslog = None
    cfg.errorlog = logging.getLogger("hypercorn.error")
    cfg.graceful_timeout = shared.shutdown_grace_period.total_seconds()
    cfg.keep_alive_timeout = 75
    cfg.clair_header_timeout = shared.http_header_timeout.total_seconds()  # type: ignore[attr-defined]
    tls = shared.tls
    if tls is not None and tls.cert:
        cfg.certfile = tls.cert
        cfg.keyfile = tls.key
    return cfg


async def _listen(app: Any, sock: socket.socket, stop: asyncio.Event, shared: Any) -> None:
    """Serve `app` on `sock` (`shared`: the config's shared keys) until `stop` is set."""
    # Hypercorn's ASGIFramework type is narrower than Starlette's signature.
    await serve(app, _hypercorn_config(sock, shared), shutdown_trigger=stop.wait)


def services_for(mode: str, config: Any) -> list[str]:
    if mode != "combo":
        return [mode]
    names = ["indexer", "matcher"]
    notifier = config.notifier
    if notifier.webhook or notifier.amqp or notifier.stomp:
        names.append("notifier")
    else:
        log.info("no notifier delivery mechanism configured: notifier disabled")
    return names


async def start_services(
    mode: str, config: Any, dsns: dict[str, str | None], migrations: dict[str, bool]
) -> list[Service]:
    """Start each service of the mode in dependency order, wiring peers."""
    from clair_common.remote import RemoteIndexer, RemoteMatcher

    started: list[Service] = []
    local: dict[str, Any] = {}
    psk = config.auth.psk.key_bytes if config.auth.psk else None
    wanted = services_for(mode, config)
    for name in SERVICE_ORDER:
        if name not in wanted:
            continue
        indexer: Indexer | None = local.get("indexer")
        matcher: Matcher | None = local.get("matcher")
        if name == "matcher" and indexer is None:
            indexer = RemoteIndexer(config.matcher.indexer_addr, psk)
        if name == "notifier":
            indexer = indexer or RemoteIndexer(config.notifier.indexer_addr, psk)
            matcher = matcher or RemoteMatcher(config.notifier.matcher_addr, psk)
        ctx = ServiceContext[Any](
            config=service_view(config, name),
            dsn=dsns.get(name),
            dsn_key=dsn_key(config, name),
            migrations=migrations.get(name, False),
            indexer=indexer,
            matcher=matcher,
        )
        try:
            service = await load_starter(name)(ctx)
        except BaseException:
            for s in reversed(started):
                await s.close()
            raise
        started.append(service)
        local[name] = service.api
    return started


async def run(opts: ServeOptions) -> None:
    config = opts.config
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    readiness = Readiness()
    async with AsyncExitStack() as stack:
        metrics_path = config.metrics.prometheus_path or "/metrics"
        introspection = build_introspection_app(readiness, metrics_path=metrics_path)
        # Both ports are taken before anything starts: one in use fails start-up at once, with
        # one line, instead of after migrations with the other listener to unwind.
        intro_sock = bind_socket(config.introspection_addr, "introspection_addr")
        api_sock = bind_socket(config.http_listen_addr, "http_listen_addr", listen=False)
        stack.callback(api_sock.close)
        intro_task = asyncio.create_task(_listen(introspection, intro_sock, stop, config))
        stack.push_async_callback(_stop_listener, intro_task, stop)
        dsns, migrations = _resolve_databases(config)
        services = await start_when_available(
            lambda: start_services(opts.mode, config, dsns, migrations),
            stop=stop,
            give_up_after=config.database_startup_timeout.total_seconds() or None,
        )
        if services is None:  # SIGTERM while waiting for the database
            return
        stack.push_async_callback(_close_all, services)
        monitor = DatabaseMonitor(
            [(dsn_key(config, name), dsns[name]) for name in services_for(opts.mode, config)],
            timeout=min(config.database_connect_timeout.total_seconds() or 5.0, 5.0),
        )
        monitor.start()
        stack.push_async_callback(monitor.close)
        readiness.checks.append(lambda: monitor.up)

        operations = [op for s in services for op in s.operations]
        middleware = [m for s in services for m in s.middleware]
        psk = config.auth.psk
        app = build_api_app(
            operations,
            psk_key=psk.key_bytes if psk else None,
            psk_issuers=psk.iss if psk else (),
            extra_middleware=middleware,
            max_body_bytes=config.http_max_body_bytes,
            database_up=lambda: monitor.up,
        )
        api_sock.listen(1024)
        api_task = asyncio.create_task(_listen(app, api_sock, stop, config))
        for s in services:
            await s.ready()
        # The shared TLS trust (every CA file read and parsed) is built before the first
        # outbound request needs it, not during it: the first layer fetch waited 0.1 s for it.
        await asyncio.to_thread(client_context)
        # What start-up built lives as long as the process: frozen out of the collector's
        # sight, a full collection walks only what requests allocate (a 400-package report's
        # worst-case pause went from ~80 ms to ~1 ms).
        gc.freeze()
        readiness.ready = True
        _announce(opts, metrics_path)
        done, _ = await asyncio.wait(
            {api_task, intro_task, asyncio.create_task(_wait(stop))},
            return_when=asyncio.FIRST_COMPLETED,
        )
        stop.set()
        readiness.ready = False
        for task in (api_task, intro_task):
            try:
                await task
            except Exception:
                log.exception("listener failed")
        for task in done:
            if task in (api_task, intro_task) and task.exception():
                raise RuntimeError("a listener stopped unexpectedly") from task.exception()


async def _stop_listener(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    # Start-up failed after the listener started: stop it in order, not by asyncio.run's
    # cancellation, which Hypercorn's lifespan reports as a failure with a traceback.
    stop.set()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await task


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


def _url(addr: str) -> str:
    host, _, port = addr.rpartition(":")
    return f"http://{host if host and host not in ('0.0.0.0', '[::]') else 'localhost'}:{port}"


def _announce(opts: ServeOptions, metrics_path: str) -> None:
    config = opts.config
    lines = [
        f"clair {opts.mode} mode is serving",
        f"  API:      {_url(config.http_listen_addr)}/indexer/api/v1/index_state",
        f"  metrics:  {_url(config.introspection_addr)}{metrics_path}",
        f"  health:   {_url(config.introspection_addr)}/readyz",
    ]
    print("\n".join(lines), flush=True)


async def _close_all(services: Sequence[Service]) -> None:
    for s in reversed(services):
        try:
            await s.close()
        except Exception:
            log.exception("closing %s", s.name)


def dsn_key(config: Any, name: str) -> str:
    """The config key that names service `name`'s database, for error messages."""
    return f"{name}.{getattr(config, name).dsn_key}"


def _resolve_databases(config: Any) -> tuple[dict[str, str | None], dict[str, bool]]:
    """Connstring precedence: config value; else libpq's PG* environment."""

    from clair_common.config import resolve_connstring

    dsns: dict[str, str | None] = {}
    migrations: dict[str, bool] = {}
    for name in SERVICE_ORDER:
        section = getattr(config, name)
        dsns[name] = resolve_connstring(section.dsn, os.environ)
        migrations[name] = bool(section.migrations)
    return dsns, migrations
