"""A webhook subscriber on 127.0.0.1 that records what the notifier POSTs to it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass(slots=True)
class Delivery:
    headers: dict[str, list[str]]
    body: dict[str, Any]


@dataclass
class WebhookReceiver:
    url: str = ""
    status: int = 200  # what the subscriber answers
    deliveries: list[Delivery] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        self.deliveries.append(Delivery(headers, orjson.loads(await request.read())))
        self._arrived.set()
        return web.Response(status=self.status)

    async def wait(self, count: int) -> list[Delivery]:
        """The first `count` deliveries, waiting for them if need be (callers bound the wait)."""
        while len(self.deliveries) < count:
            self._arrived.clear()
            await self._arrived.wait()
        return self.deliveries[:count]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
