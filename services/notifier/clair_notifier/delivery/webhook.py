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
from clair_common.errors import one_line
from clair_common.http.auth import sign
from clair_common.tls import client_session
from clair_notifier.delivery import DeliveryError

ISSUER = "clair-notifier"
# Bounds one delivery, so a subscriber that takes the request and never answers fails it.
TIMEOUT = 60.0
_CONNECT_TIMEOUT = 10.0


class WebhookDeliverer:
    name = "webhook"
    direct = False

    def __init__(
        self, config: Webhook, psk: bytes | None = None, *, timeout: float = TIMEOUT
    ) -> None:
        self.target = config.target
        self.timeout = aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(timeout, _CONNECT_TIMEOUT)
        )
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
            self._session = client_session(timeout=self.timeout)
        body = {
            "notification_id": str(notification_id),
            "callback": self.callback_url(notification_id),
        }
        try:
            async with self._session.post(
                self.target, data=orjson.dumps(body), headers=self._request_headers()
            ) as resp:
                await resp.read()
        except TimeoutError as exc:
            raise DeliveryError(
                f"POST {self.target}: timed out after {self.timeout.total:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"POST {self.target}: {one_line(exc)}") from exc
        # Any 2xx counts (Clair took only 200, failing subscribers that answer 202 or 204).
        if not 200 <= resp.status < 300:
            raise DeliveryError(f"POST {self.target}: HTTP {resp.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
