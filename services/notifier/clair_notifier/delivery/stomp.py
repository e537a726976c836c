"""STOMP delivery (clair-api.md 8, Clair's `notifier/stomp`).

Each delivery dials the configured host:port pairs in order (30 s each, TLS when `tls` is
set) and keeps the first that logs in. Callback mode sends `{"notification_id", "callback"}`
to `destination` and waits for the broker's receipt; direct mode sends the set as JSON arrays
of `rollup` notifications inside one STOMP transaction, whose COMMIT is receipted. Unlike
Clair, which parses `user.login`/`user.passcode` but never sends them, the login is sent.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

from clair_common.config.base import split_host_port
from clair_common.config.notifier import STOMP
from clair_notifier.delivery import DeliveryError, callback_body, rollups, tls_context
from clair_notifier.delivery.stompclient import StompClient

# Bounds one dial, and the wait for each answer of the broker.
TIMEOUT = 30.0

__all__ = ["StompDeliverer"]


class StompDeliverer:
    name = "stomp"

    def __init__(self, config: STOMP, *, timeout: float = TIMEOUT) -> None:
        self.config = config
        self.direct = config.direct
        self.timeout = timeout

    async def _connect(self) -> StompClient:
        user = self.config.user
        tls = tls_context(self.config.tls) if self.config.tls is not None else None
        errors: list[str] = []
        for uri in self.config.uris:
            host, port = split_host_port(uri)
            try:
                return await StompClient.connect(
                    host or "localhost",
                    port,
                    login=user.login if user else "",
                    passcode=user.passcode if user else "",
                    tls=tls,
                    io_timeout=self.timeout,
                )
            except DeliveryError as exc:
                errors.append(f"{uri}: {exc}")
        raise DeliveryError("stomp: no broker could be reached: " + "; ".join(errors))

    async def deliver(
        self, notification_id: uuid.UUID, notifications: Sequence[dict[str, Any]] = ()
    ) -> None:
        client = await self._connect()
        try:
            if self.direct:
                transaction = await client.begin()
                try:
                    for body in rollups(notifications, self.config.rollup):
                        await client.send(self.config.destination, body, transaction=transaction)
                    await client.commit(transaction)
                except BaseException:
                    await _abort(client, transaction)
                    raise
            else:
                body = callback_body(self.config.callback, notification_id)
                await client.send(self.config.destination, body)
        except BaseException:
            await client.close()
            raise
        # Everything sent was receipted already: the set is delivered whatever happens here.
        with contextlib.suppress(DeliveryError):
            await client.disconnect()

    async def close(self) -> None:
        """Nothing held between deliveries."""


async def _abort(client: StompClient, transaction: str) -> None:
    # Best effort: a broker that already failed the connection drops the transaction itself.
    with contextlib.suppress(DeliveryError):
        await client.abort(transaction)
