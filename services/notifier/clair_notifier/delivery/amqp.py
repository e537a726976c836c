"""AMQP 0-9-1 delivery (clair-api.md 8, Clair's `notifier/amqp`).

The broker URIs are dialed in order and the first connection that opens is kept for later
deliveries (`amqps://` ones with the configured TLS). A named exchange is declared passively,
so a missing exchange fails the delivery rather than being created. Callback mode publishes
`{"notification_id", "callback"}`; direct mode publishes the set itself as JSON arrays of
`rollup` notifications inside one AMQP transaction, so the subscriber gets all or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.connection import make_url

from clair_common.config.notifier import AMQP
from clair_notifier.delivery import DeliveryError, callback_body, rollups, tls_context

APP_ID = "clairV4-notifier"
CONTENT_TYPE = "application/json"
# Bounds one dial and one publish, so a broker that stops answering fails the delivery.
TIMEOUT = 30.0

__all__ = ["AMQPDeliverer"]


class AMQPDeliverer:
    name = "amqp"

    def __init__(self, config: AMQP) -> None:
        self.config = config
        self.direct = config.direct
        self._connection: AbstractConnection | None = None
        self._dial_lock = asyncio.Lock()

    async def _connect(self) -> AbstractConnection:
        async with self._dial_lock:
            if self._connection is not None and not self._connection.is_closed:
                return self._connection
            errors: list[str] = []
            for uri in self.config.uris:
                tls = urlsplit(uri).scheme == "amqps"
                connection = aio_pika.Connection(
                    make_url(uri), ssl_context=tls_context(self.config.tls) if tls else None
                )
                try:
                    await connection.connect(timeout=TIMEOUT)
                except Exception as exc:
                    # Closed here: aio_pika.connect leaves a failed connection to the garbage
                    # collector, whose __del__ schedules its close on whatever loop is current.
                    with contextlib.suppress(Exception):
                        await connection.close()
                    errors.append(f"{_redacted(uri)}: {exc or type(exc).__name__}")
                    continue
                self._connection = connection
                return connection
            raise DeliveryError("amqp: no broker could be reached: " + "; ".join(errors))

    async def _exchange(self, channel: AbstractChannel) -> AbstractExchange:
        if not self.config.exchange.name:
            return channel.default_exchange
        # Passive: the exchange must exist, it is the subscriber's to declare.
        return await channel.get_exchange(self.config.exchange.name, ensure=True)

    async def deliver(
        self, notification_id: uuid.UUID, notifications: Sequence[dict[str, Any]] = ()
    ) -> None:
        connection = await self._connect()
        try:
            if self.direct:
                await self._publish_set(connection, notifications)
            else:
                await self._publish_callback(connection, notification_id)
        except DeliveryError:
            raise
        except Exception as exc:
            raise DeliveryError(f"amqp: {exc or type(exc).__name__}") from exc

    async def _publish_callback(
        self, connection: AbstractConnection, notification_id: uuid.UUID
    ) -> None:
        # Publisher confirms: the delivery counts once the broker has taken the message.
        async with connection.channel(publisher_confirms=True) as channel:
            exchange = await self._exchange(channel)
            await exchange.publish(
                _message(callback_body(self.config.callback, notification_id)),
                routing_key=self.config.routing_key,
                mandatory=False,  # as Clair: an unbound routing key is not the notifier's fault
                timeout=TIMEOUT,
            )

    async def _publish_set(
        self, connection: AbstractConnection, notifications: Sequence[dict[str, Any]]
    ) -> None:
        # Transactions and publisher confirms exclude each other on one channel.
        async with connection.channel(publisher_confirms=False) as channel:
            exchange = await self._exchange(channel)
            async with channel.transaction():
                for body in rollups(notifications, self.config.rollup):
                    await exchange.publish(
                        _message(body),
                        routing_key=self.config.routing_key,
                        mandatory=False,
                        timeout=TIMEOUT,
                    )

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()


def _message(body: bytes) -> aio_pika.Message:
    return aio_pika.Message(body, content_type=CONTENT_TYPE, app_id=APP_ID)


def _redacted(uri: str) -> str:
    """The URI without its password, for logs and receipts."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
