"""Request-body cap: a declared Content-Length past the limit is refused before anything is
read, and a body that streams past it is cut off where it crosses, so no request makes the
server hold more than the limit (`http_max_body_bytes`)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clair_common.http.errors import APIError, error_response


def _too_large(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int | None) -> None:
        self.app = app
        self.max_bytes = max_bytes if max_bytes and max_bytes > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_bytes
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await error_response(413, _too_large(limit))(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the endpoint's body read: the app answers Clair's error.
                    raise APIError(413, _too_large(limit))
            return message

        await self.app(scope, limited_receive, send)
