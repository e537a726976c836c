"""AMQP 0-9-1 delivery (clair-api.md 8, Clair's `notifier/amqp`).

The broker URIs are dialed in order and the first connection that opens is kept for later
deliveries (`amqps://` ones with the configured TLS) while it stays up; a delivery that fails
drops it, so one lost or wedged (a broker that stopped answering, a confirm that never came)
is never used again, and the next delivery dials afresh. Every exchange with the broker (a
dial, opening a channel, each publish and its confirm, the commit) must end within `timeout`.
A named exchange is declared passively, so a missing exchange fails the delivery rather than
being created. Callback mode publishes `{"notification_id", "callback"}`; direct mode
publishes the set itself as JSON arrays of `rollup` notifications inside one AMQP transaction,
so the subscriber gets all or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.connection import make_url

from clair_common.config.notifier import AMQP
from clair_common.errors import one_line
from clair_notifier.delivery import DeliveryError, callback_body, rollups, tls_context

APP_ID = "clairV4-notifier"
CONTENT_TYPE = "application/json"
# Bounds one dial and one publish, so a broker that stops answering fails the delivery.
TIMEOUT = 30.0

__all__ = ["AMQPDeliverer"]


def _not_a_delivery_failure(record: logging.LogRecord) -> bool:
    # aiormq logs each failed dial, lost connection and timed-out call (ERROR, WARNING); the
    # delivery loop already says so, once per change of state rather than once per attempt.
    return not str(record.msg).startswith(
        (
            "error when creating transport",
            "Cancelling cause reader exited abnormally",
            "Closing channel %r",  # after a call timed out
        )
    )


for _name in ("aiormq.connection", "aiormq.channel"):
    logging.getLogger(_name).addFilter(_not_a_delivery_failure)


class AMQPDeliverer:
    name = "amqp"

    def __init__(self, config: AMQP, *, timeout: float = TIMEOUT) -> None:
        self.config = config
        self.timeout = timeout
        self.direct = config.direct
        self._connection: AbstractConnection | None = None
        self._dial_lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()  # connections being closed

    async def _connect(self) -> AbstractConnection:
        async with self._dial_lock:
            kept = self._connection
            # A dropped connection is not `is_closed` (only close() sets that): `connected`
            # is cleared when the broker goes away.
            if kept is not None and not kept.is_closed and kept.connected.is_set():
                return kept
            await self._drop()
            errors: list[str] = []
            for uri in self.config.uris:
                tls = urlsplit(uri).scheme == "amqps"
                connection = aio_pika.Connection(
                    make_url(uri), ssl_context=tls_context(self.config.tls) if tls else None
                )
                try:
                    await connection.connect(timeout=self.timeout)
                except Exception as exc:
                    # Closed here: aio_pika.connect leaves a failed connection to the garbage
                    # collector, whose __del__ schedules its close on whatever loop is current.
                    with contextlib.suppress(Exception):
                        await connection.close()
                    errors.append(f"{_redacted(uri)}: {one_line(exc)}")
                    continue
                self._connection = connection
                return connection
            raise DeliveryError("amqp: no broker could be reached: " + "; ".join(errors))

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        # On a broker that stopped reading, aiormq's close waits for its unsent frames up to
        # three heartbeats (minutes): that goes on in the background, not in the delivery.
        closing = asyncio.create_task(_close_quietly(connection))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        await asyncio.wait({closing}, timeout=self.timeout)

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
        except Exception as exc:
            await self._drop()
            if isinstance(exc, DeliveryError):
                raise
            if isinstance(exc, TimeoutError):
                raise DeliveryError(
                    f"amqp: the broker did not answer within {self.timeout:g} s"
                ) from exc
            raise DeliveryError(f"amqp: {one_line(exc)}") from exc

    def _step(self) -> asyncio.Timeout:
        """Bounds one exchange with the broker (not a whole set, which may be large).

        Channels are opened and closed inside such bounds, never by `async with`: a context
        exit after the bound fired would wait, unbounded, on a wedged connection."""
        return asyncio.timeout(self.timeout)

    async def _publish_callback(
        self, connection: AbstractConnection, notification_id: uuid.UUID
    ) -> None:
        # Publisher confirms: the delivery counts once the broker has taken the message.
        async with self._step():
            channel = await connection.channel(publisher_confirms=True)
            exchange = await self._exchange(channel)
        async with self._step():
            await exchange.publish(
                _message(callback_body(self.config.callback, notification_id)),
                routing_key=self.config.routing_key,
                mandatory=False,  # as Clair: an unbound routing key is not the notifier's fault
            )
        async with self._step():
            await channel.close()

    async def _publish_set(
        self, connection: AbstractConnection, notifications: Sequence[dict[str, Any]]
    ) -> None:
        # Transactions and publisher confirms exclude each other on one channel: the set
        # counts once the broker answered the commit.
        async with self._step():
            channel = await connection.channel(publisher_confirms=False)
            exchange = await self._exchange(channel)
            transaction = channel.transaction()
            await transaction.select()
        for body in rollups(notifications, self.config.rollup):
            async with self._step():
                await exchange.publish(
                    _message(body), routing_key=self.config.routing_key, mandatory=False
                )
        async with self._step():
            await transaction.commit()
        async with self._step():
            await channel.close()

    async def close(self) -> None:
        await self._drop()
        for closing in list(self._closing):
            closing.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)


async def _close_quietly(connection: AbstractConnection) -> None:
    with contextlib.suppress(Exception):
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
