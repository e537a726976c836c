"""A webhook subscriber on 127.0.0.1 that records what the notifier POSTs to it.

It can fail the ways a subscriber does: `stop()` closes its port (connections are refused)
and `start()` opens the same port again; `status` is what it answers; with `hang` set (or for
the sets in `hang_ids`) it takes requests and never answers them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiohttp import web
from clair_dev.ports import free_port


@dataclass(slots=True)
class Delivery:
    headers: dict[str, list[str]]
    body: dict[str, Any]
    status: int | None = None  # what it was answered; None: never (hung)


@dataclass
class WebhookReceiver:
    url: str = ""
    status: int = 200  # what the subscriber answers
    hang: bool = False
    hang_ids: set[str] = field(default_factory=set)
    # Every request that arrived, answered or not.
    deliveries: list[Delivery] = field(default_factory=list)
    port: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        delivery = Delivery(headers, orjson.loads(await request.read()))
        self.deliveries.append(delivery)
        self._arrived.set()
        if self.hang or delivery.body.get("notification_id") in self.hang_ids:
            await asyncio.Event().wait()  # until the client gives up or the server stops
        delivery.status = self.status
        return web.Response(status=self.status)

    async def wait(self, count: int) -> list[Delivery]:
        """The first `count` deliveries, waiting for them if need be (callers bound the wait)."""
        while len(self.deliveries) < count:
            self._arrived.clear()
            await self._arrived.wait()
        return self.deliveries[:count]

    def accepted(self) -> list[str]:
        """The set ids answered with a 2xx, in the order they came."""
        return [
            d.body["notification_id"]
            for d in self.deliveries
            if d.status is not None and 200 <= d.status < 300
        ]

    async def start(self) -> None:
        # handler_cancellation: a hung request ends when its client hangs up.
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        # Below the ephemeral range, so no outgoing connection takes it between stop and start.
        self.port = self.port or free_port()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        host, self.port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{self.port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def read_pages(client: httpx.AsyncClient, url: str) -> list[str]:
    """A notification set's ids as a subscriber reads them from its callback `url`: two a
    page, following `next` to the end."""
    ids: list[str] = []
    params = {"page_size": "2"}
    while True:
        resp = await client.get(url, params=params)
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        ids += [n["id"] for n in doc["notifications"]]
        if "next" not in doc["page"]:
            return ids
        params["next"] = doc["page"]["next"]
