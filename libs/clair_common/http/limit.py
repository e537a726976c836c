"""Request-concurrency limit: try-acquire or 429 (clair-api.md 1.3, `concurrentlimit.go`)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from clair_common.http.errors import error_response
from clair_common.http.observe import CONCURRENCY_LIMITED, method_label


class ConcurrencyLimitMiddleware:
    """Admits at most `limit` matching requests at once; None means unlimited.

    `endpoints` are the paths the refusal counter may name; any other path (a client picks
    it) is counted as "other" so junk paths cannot mint metric series.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int | None,
        applies: Callable[[str, str], bool],
        endpoints: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.limit = limit
        self.applies = applies
        self.endpoints = endpoints
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self.limit is None
            or not self.applies(scope["method"], scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        # Single-threaded event loop: check-and-increment cannot interleave.
        if self.active >= self.limit:
            path = scope["path"]
            endpoint = path if path in self.endpoints else "other"
            CONCURRENCY_LIMITED.labels(endpoint, method_label(scope["method"])).inc()
            response = error_response(429, "server handling too many requests")
            await response(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
