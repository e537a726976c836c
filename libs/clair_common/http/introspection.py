"""The introspection server: `/metrics`, `/healthz`, `/readyz` (clair-api.md section 2)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


class Readiness:
    """Flipped once migrations ran and the API listener is about to serve; while ready, every
    check (e.g. "the database answers") must hold too."""

    def __init__(self) -> None:
        self.ready = False
        self.checks: list[Callable[[], bool]] = []

    def __bool__(self) -> bool:
        return self.ready and all(check() for check in self.checks)


def build_introspection_app(
    readiness: Readiness,
    *,
    metrics_path: str = "/metrics",
    registry: CollectorRegistry = REGISTRY,
) -> Starlette:
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        status = 200 if readiness else 503
        return Response(status_code=status, headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route(metrics_path, metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )
