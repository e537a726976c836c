"""The API application factory: Clair's routing semantics plus the shared middleware."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Lifespan

from clair_common.db.health import (
    UNAVAILABLE_ERRORS,
    DatabaseGateMiddleware,
)
from clair_common.http.auth import PSKAuthMiddleware, PSKVerifier
from clair_common.http.bodylimit import BodyLimitMiddleware
from clair_common.http.compress import CompressionMiddleware
from clair_common.http.errors import APIError, error_response
from clair_common.http.observe import ObserveMiddleware
from clair_common.http.openapi import openapi_route
from clair_common.http.routes import Operation, to_routes

log = logging.getLogger("clair.http")


async def robots(_: Request) -> Response:
    return PlainTextResponse("User-agent: *\nDisallow: /\n", headers={"Cache-Control": "no-store"})


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc.status, exc.message)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        # Go's ServeMux answers unknown paths in plain text via http.Error, and so does Clair.
        return PlainTextResponse(
            "404 page not found\n",
            status_code=404,
            headers={"X-Content-Type-Options": "nosniff"},
        )
    if exc.status_code == 405:
        response = error_response(405, f"method disallowed: {request.method}")
        if exc.headers and "Allow" in exc.headers:  # RFC 9110: a 405 lists what is allowed
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    return error_response(exc.status_code, str(exc.detail))


async def _unavailable(request: Request, exc: Exception) -> Response:
    # The database monitor logs the outage once; a traceback per request adds nothing.
    log.debug("database unavailable serving %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "a database or peer service is unavailable")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error serving %s %s", request.method, request.url.path)
    return error_response(500, f"internal error: {exc}")


def build_api_app(
    operations: Sequence[Operation],
    *,
    psk_key: bytes | None = None,
    psk_issuers: Sequence[str] = (),
    extra_middleware: Sequence[Middleware] = (),
    lifespan: Lifespan[Any] | None = None,
    max_body_bytes: int | None = None,
    database_up: Callable[[], bool] | None = None,
) -> Starlette:
    routes = [
        *to_routes(operations),
        Route("/robots.txt", robots, methods=["GET"]),
        openapi_route(operations),
    ]
    middleware = [
        Middleware(ObserveMiddleware, routes=routes),
        Middleware(BodyLimitMiddleware, max_bytes=max_body_bytes),
        Middleware(DatabaseGateMiddleware, is_up=database_up),
    ]
    if psk_key:
        middleware.append(Middleware(PSKAuthMiddleware, verifier=PSKVerifier(psk_key, psk_issuers)))
    middleware.extend(extra_middleware)
    middleware.append(Middleware(CompressionMiddleware))
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            APIError: _api_error,
            HTTPException: _http_exception,
            # Handled where they are raised (below the middleware), so never re-raised.
            **dict.fromkeys(UNAVAILABLE_ERRORS, _unavailable),
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
