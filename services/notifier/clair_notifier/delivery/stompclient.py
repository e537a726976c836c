"""A small asyncio STOMP 1.2 client: what the STOMP deliverer (and its tests) need.

Frames are `COMMAND\\n` header lines `name:value\\n`, a blank line, the body and a NUL. Header
values are escaped as STOMP 1.2 says (except in CONNECT/CONNECTED). Heart-beating is off
(`heart-beat:0,0`): a connection lives for one delivery. An ERROR frame from the broker, or
the broker closing the connection, raises DeliveryError with the broker's message.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from dataclasses import dataclass, field

from clair_notifier.delivery import DeliveryError

__all__ = ["Frame", "StompClient"]

# Bounds the dial, and waiting for each frame (CONNECTED, RECEIPT) once connected.
TIMEOUT = 30.0
_MAX_FRAME = 64 << 20

_ESCAPES = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"}
_UNESCAPES = {"\\": "\\", "r": "\r", "n": "\n", "c": ":"}


def _escape(value: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in value)


def _unescape(value: str) -> str:
    out, chars = [], iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if nxt not in _UNESCAPES:
                raise DeliveryError(f"stomp: bad escape \\{nxt} in header")
            out.append(_UNESCAPES[nxt])
        else:
            out.append(ch)
    return "".join(out)


@dataclass
class Frame:
    command: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def encode(self) -> bytes:
        raw = self.command in ("CONNECT", "STOMP", "CONNECTED")
        lines = [self.command]
        headers = dict(self.headers)
        if self.body:
            headers["content-length"] = str(len(self.body))
        for name, value in headers.items():
            lines.append(f"{name}:{value}" if raw else f"{_escape(name)}:{_escape(value)}")
        return ("\n".join(lines) + "\n\n").encode() + self.body + b"\0"


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """The next frame, skipping heart-beat EOLs between frames."""
    try:
        line = b"\n"
        while line in (b"\n", b"\r\n"):
            line = await reader.readuntil(b"\n")
        command = line.rstrip(b"\r\n").decode()
        headers: dict[str, str] = {}
        while (line := (await reader.readuntil(b"\n")).rstrip(b"\r\n")) != b"":
            name, sep, value = line.decode().partition(":")
            if not sep:
                raise DeliveryError(f"stomp: malformed header line {line!r}")
            raw = command == "CONNECTED"
            # A repeated header: the first occurrence counts (STOMP 1.2).
            headers.setdefault(name if raw else _unescape(name), value if raw else _unescape(value))
        if "content-length" in headers:
            length = int(headers["content-length"])
            if not 0 <= length <= _MAX_FRAME:
                raise DeliveryError(f"stomp: content-length {length} out of range")
            body = await reader.readexactly(length + 1)
            if body[-1:] != b"\0":
                raise DeliveryError("stomp: frame not terminated by NUL")
            body = body[:-1]
        else:
            body = (await reader.readuntil(b"\0"))[:-1]
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise DeliveryError("stomp: connection closed by the broker") from exc
    except asyncio.LimitOverrunError as exc:
        raise DeliveryError("stomp: frame too large") from exc
    return Frame(command, headers, body)


class StompClient:
    """One STOMP connection. Use `connect`, then `send`/`begin`/`commit`/`abort`/`subscribe`/
    `receive`, and `disconnect` (or `close` on errors)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timeout: float = TIMEOUT,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.server: dict[str, str] = {}
        self._ids = itertools.count(1)
        # MESSAGE frames read while waiting for a RECEIPT, for `receive`.
        self._messages: list[Frame] = []

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        login: str = "",
        passcode: str = "",
        vhost: str = "/",
        tls: ssl.SSLContext | None = None,
        io_timeout: float = TIMEOUT,
    ) -> StompClient:
        """Dials and logs in; `vhost` goes in the `host` header (RabbitMQ's virtual host).
        `io_timeout` bounds the dial and each wait for the broker's answer."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None, limit=_MAX_FRAME
                ),
                io_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise DeliveryError(f"stomp: dial {host}:{port}: {exc or 'timed out'}") from exc
        client = cls(reader, writer, io_timeout)
        try:
            headers = {"accept-version": "1.2", "host": vhost, "heart-beat": "0,0"}
            if login:
                headers["login"] = login
                headers["passcode"] = passcode
            await client._write(Frame("CONNECT", headers))
            reply = await client._read()
            if reply.command != "CONNECTED":
                raise DeliveryError(f"stomp: expected CONNECTED, got {reply.command}")
            client.server = reply.headers
        except BaseException:
            await client.close()
            raise
        return client

    async def _write(self, frame: Frame) -> None:
        try:
            self.writer.write(frame.encode())
            # Bounded: a broker that stops reading fills the socket buffers and would hold a
            # large direct set here forever.
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except ConnectionError as exc:
            raise DeliveryError(f"stomp: connection lost: {exc}") from exc
        except TimeoutError as exc:
            raise DeliveryError("stomp: the broker stopped reading") from exc

    async def _read(self) -> Frame:
        try:
            frame = await asyncio.wait_for(read_frame(self.reader), self.timeout)
        except TimeoutError as exc:
            raise DeliveryError("stomp: no answer from the broker") from exc
        if frame.command == "ERROR":
            detail = frame.headers.get("message", "")
            text = frame.body.decode(errors="replace").strip()
            raise DeliveryError(f"stomp: broker error: {detail}" + (f": {text}" if text else ""))
        return frame

    async def _with_receipt(self, frame: Frame) -> None:
        """Sends `frame` and waits for the broker to acknowledge it."""
        receipt = f"r-{next(self._ids)}"
        frame.headers["receipt"] = receipt
        await self._write(frame)
        while True:
            reply = await self._read()
            if reply.command == "RECEIPT" and reply.headers.get("receipt-id") == receipt:
                return
            if reply.command == "MESSAGE":
                self._messages.append(reply)
                continue
            raise DeliveryError(f"stomp: expected RECEIPT {receipt}, got {reply.command}")

    async def send(
        self,
        destination: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        transaction: str | None = None,
    ) -> None:
        """Sends a message; outside a transaction, waits for the broker's receipt (inside one,
        the COMMIT's receipt covers it)."""
        headers = {"destination": destination, "content-type": content_type}
        if transaction is not None:
            headers["transaction"] = transaction
            await self._write(Frame("SEND", headers, body))
        else:
            await self._with_receipt(Frame("SEND", headers, body))

    async def begin(self) -> str:
        transaction = f"tx-{next(self._ids)}"
        await self._write(Frame("BEGIN", {"transaction": transaction}))
        return transaction

    async def commit(self, transaction: str) -> None:
        await self._with_receipt(Frame("COMMIT", {"transaction": transaction}))

    async def abort(self, transaction: str) -> None:
        await self._write(Frame("ABORT", {"transaction": transaction}))

    async def subscribe(self, destination: str) -> str:
        """Subscribes with automatic acknowledgement; returns the subscription id."""
        sub = f"sub-{next(self._ids)}"
        await self._with_receipt(
            Frame("SUBSCRIBE", {"destination": destination, "id": sub, "ack": "auto"})
        )
        return sub

    async def receive(self, wait: float = 10.0) -> Frame:
        """The next MESSAGE frame."""
        if self._messages:
            return self._messages.pop(0)
        try:
            frame = await asyncio.wait_for(read_frame(self.reader), wait)
        except TimeoutError as exc:
            raise DeliveryError("stomp: no message") from exc
        if frame.command != "MESSAGE":
            raise DeliveryError(f"stomp: expected MESSAGE, got {frame.command}")
        return frame

    async def disconnect(self) -> None:
        """A graceful DISCONNECT: the receipt says the broker has everything sent before."""
        try:
            await self._with_receipt(Frame("DISCONNECT"))
        finally:
            await self.close()

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), self.timeout)
        except TimeoutError:  # a broker that stopped reading never takes the unsent bytes
            self.writer.transport.abort()
        except (OSError, ssl.SSLError):  # already broken: nothing to flush
            pass
