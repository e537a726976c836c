"""Webhook delivery (clair-api.md 8): POST the set's id and callback URL to `webhook.target`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson
from multidict import CIMultiDict

from clair_common.config.notifier import Webhook
from clair_common.http.auth import sign
from clair_common.tls import client_session
from clair_notifier.delivery import DeliveryError

ISSUER = "clair-notifier"
TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)


class WebhookDeliverer:
    name = "webhook"
    direct = False

    def __init__(self, config: Webhook, psk: bytes | None = None) -> None:
        self.target = config.target
        self.callback = config.callback
        self.headers = config.headers
        self.psk = psk
        self._session: aiohttp.ClientSession | None = None

    def callback_url(self, notification_id: uuid.UUID) -> str:
        # The config guarantees the trailing "/", so the id is appended, not substituted.
        return urljoin(self.callback, str(notification_id))

    def _request_headers(self) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        for name, values in self.headers.items():
            for value in values:
                headers.add(name, value)
        headers["Content-Type"] = "application/json"
        if self.psk:  # whenever a PSK is configured; `webhook.signed` is deprecated
            headers["Authorization"] = "Bearer " + sign(self.psk, ISSUER)
        return headers

    async def deliver(
        self, notification_id: uuid.UUID, notifications: Sequence[dict[str, Any]] = ()
    ) -> None:
        if self._session is None or self._session.closed:
            self._session = client_session(timeout=TIMEOUT)
        body = {
            "notification_id": str(notification_id),
            "callback": self.callback_url(notification_id),
        }
        async with self._session.post(
            self.target, data=orjson.dumps(body), headers=self._request_headers()
        ) as resp:
            await resp.read()
            # Any 2xx counts (Clair took only 200, failing subscribers that answer 202 or 204).
            if not 200 <= resp.status < 300:
                raise DeliveryError(f"POST {self.target}: HTTP {resp.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
