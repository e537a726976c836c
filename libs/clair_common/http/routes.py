"""Route declarations carrying the metadata the OpenAPI document is generated from.

A service declares its routes once, at module level, as `ServiceOperation`s whose handlers take
`(request, service)`; `bind` turns them into the `Operation`s of one service object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]
S = TypeVar("S")
S_contra = TypeVar("S_contra", contravariant=True)


class Handler(Protocol[S_contra]):
    """A module-level route handler over the service object that answers it."""

    def __call__(self, request: Request, service: S_contra) -> Awaitable[Response]: ...


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


@dataclass(frozen=True, slots=True)
class ServiceOperation(Generic[S]):
    """An `Operation` before it is bound to its service: `handler(request, service)` answers it."""

    method: str
    path: str
    handler: Handler[S]
    operation_id: str
    summary: str
    tag: str
    request_schema: str | None = None
    request_media_type: str = "application/json"
    responses: dict[int, Reply] = field(default_factory=dict)
    query: tuple[tuple[str, str, bool], ...] = ()

    def bind(self, service: S) -> Operation:
        return Operation(
            self.method,
            self.path,
            # A partial, not a closure: Starlette sees through it to the handler function.
            partial(self.handler, service=service),
            self.operation_id,
            self.summary,
            self.tag,
            self.request_schema,
            self.request_media_type,
            self.responses,
            self.query,
        )


def bind(operations: Iterable[ServiceOperation[S]], service: S) -> list[Operation]:
    """The operations answered by `service`."""
    return [op.bind(service) for op in operations]


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
