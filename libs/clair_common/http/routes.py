"""Route declarations carrying the metadata the OpenAPI document is generated from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Reply:
    """One documented response of an operation."""

    description: str
    schema: str | None = None  # a component name from clair_common.http.schemas
    media_type: str = "application/json"
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    endpoint: Endpoint
    operation_id: str
    summary: str
    tag: str
    request_schema: str | None = None
    request_media_type: str = "application/json"
    responses: dict[int, Reply] = field(default_factory=dict)
    query: tuple[tuple[str, str, bool], ...] = ()  # (name, json type, required)


def to_routes(operations: Sequence[Operation]) -> list[Route]:
    """One Starlette route per path, dispatching on method (405 otherwise, HEAD included: Clair's
    handlers accept only their own methods). A path ending in "/" also answers without the
    slash with Go's ServeMux redirect, a 301 to the path with it."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method.upper()] = op.endpoint
    routes: list[Route] = []
    for path, methods in by_path.items():
        route = Route(path, _dispatch(methods), methods=list(methods))
        if "HEAD" not in methods and route.methods is not None:
            route.methods.discard("HEAD")  # Starlette adds HEAD to every GET route
        routes.append(route)
        if path.endswith("/") and len(path) > 1 and path[:-1] not in by_path:
            routes.append(Route(path[:-1], _redirect_to(path), methods=list(_ALL_METHODS)))
    return routes


_ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _redirect_to(path: str) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        query = request.url.query
        return RedirectResponse(path + (f"?{query}" if query else ""), status_code=301)

    return endpoint


def _dispatch(methods: dict[str, Endpoint]) -> Endpoint:
    if len(methods) == 1:
        return next(iter(methods.values()))

    async def endpoint(request: Request) -> Response:
        return await methods[request.method](request)

    return endpoint
