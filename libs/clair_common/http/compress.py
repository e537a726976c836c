"""Response compression negotiated by Accept-Encoding: zstd, gzip, deflate (clair-api.md 1.1).

Bodies are buffered: API responses are JSON documents that already sit in memory, and a
buffered body lets us skip compression for tiny payloads where it only adds bytes. A body a
service keeps in a cache is an `EncodedBody`: each compressed variant is made once, and
`encoded_response` sends the one the request accepts (the middleware passes it on as is).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import zstandard
from isal import igzip
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIN_SIZE = 512
_ZSTD = zstandard.ZstdCompressor(level=3)


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data, 6)


def _gzip(data: bytes) -> bytes:
    return igzip.compress(data, compresslevel=1)


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "zstd": _ZSTD.compress,
    "gzip": _gzip,
    "deflate": _deflate,
}
_PREFERENCE = ("zstd", "gzip", "deflate")


def choose_encoding(accept: str) -> str | None:
    """The best encoding the client accepts with a non-zero q, or None for identity."""
    weights: dict[str, float] = {}
    for part in accept.split(","):
        token, *params = (p.strip() for p in part.split(";"))
        if not token:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[token.lower()] = q
    star = weights.get("*")
    best: str | None = None
    best_q = 0.0
    for enc in _PREFERENCE:
        q = weights.get(enc, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = enc, q
    return best


class EncodedBody:
    """A response body held in memory with the compressed variants asked for so far, each made
    once: clients poll the same cached reports all day, and compressing them per request was
    most of the cost of answering."""

    __slots__ = ("_variants", "identity", "on_grow")

    def __init__(self, identity: bytes, on_grow: Callable[[], None] | None = None) -> None:
        self.identity = identity
        # Called when a new variant adds to `size`, so the cache holding the body recounts it.
        self.on_grow = on_grow
        self._variants: dict[str, bytes] = {}

    @property
    def size(self) -> int:
        """Bytes held, the variants included."""
        return len(self.identity) + sum(len(v) for v in self._variants.values())

    def variant(self, encoding: str) -> bytes | None:
        """The variant in `encoding` if made already."""
        return self._variants.get(encoding)

    def set_variant(self, encoding: str, data: bytes) -> None:
        self._variants[encoding] = data
        if self.on_grow is not None:
            self.on_grow()

    def encoded(self, encoding: str | None) -> tuple[bytes, str | None]:
        """The bytes to send to a client accepting `encoding` (None: identity only) and the
        encoding they carry; a body under MIN_SIZE goes as it is."""
        if encoding is None or len(self.identity) < MIN_SIZE:
            return self.identity, None
        data = self._variants.get(encoding)
        if data is None:
            data = ENCODERS[encoding](self.identity)
            self.set_variant(encoding, data)
        return data, encoding


def encoded_response(
    request: Request,
    body: EncodedBody,
    *,
    status_code: int = 200,
    media_type: str,
    headers: dict[str, str],
) -> Response:
    """`body` in the best encoding the request accepts, with the headers saying which."""
    data, encoding = body.encoded(choose_encoding(request.headers.get("accept-encoding", "")))
    if encoding is not None:
        headers["Content-Encoding"] = encoding
        vary = headers.get("Vary")
        headers["Vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"
    return Response(data, status_code=status_code, media_type=media_type, headers=headers)


class CompressionMiddleware:
    def __init__(self, app: ASGIApp, min_size: int = MIN_SIZE) -> None:
        self.app = app
        self.min_size = min_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = choose_encoding(Headers(scope=scope).get("accept-encoding", ""))
        if encoding is None:
            await self.app(scope, receive, send)
            return

        start: Message | None = None
        chunks: list[bytes] = []

        passthrough = False

        async def buffered_send(message: Message) -> None:
            nonlocal start, passthrough
            if passthrough:
                await send(message)
                return
            if message["type"] == "http.response.start":
                if any(name == b"content-encoding" for name, _ in message.get("headers", ())):
                    passthrough = True  # encoded_response chose the encoding already
                    await send(message)
                    return
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._flush(send, start, b"".join(chunks), encoding)

        await self.app(scope, receive, buffered_send)

    async def _flush(self, send: Send, start: Message, body: bytes, encoding: str) -> None:
        headers = MutableHeaders(raw=list(start.get("headers", [])))
        if len(body) >= self.min_size and "content-encoding" not in headers:
            body = ENCODERS[encoding](body)
            headers["Content-Encoding"] = encoding
            headers["Content-Length"] = str(len(body))
            vary = headers.get("vary")
            headers["Vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"
        start = dict(start)
        start["headers"] = headers.raw
        await send(start)
        await send({"type": "http.response.body", "body": body})
