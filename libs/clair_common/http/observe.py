"""Per-request observability: request ids, Prometheus metrics with Clair's names, spans, a log line.

Metric names follow clair-api.md section 2: `clair_http_<group>_*` where the group is the route
tree (`indexerv1`, `matcherv1`, `notificationv1`, `discovery`) and `handler` is the route pattern.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import Tracer as SDKTracer
from prometheus_client import Counter, Gauge, Histogram
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("clair.http")

GROUPS = ("indexerv1", "matcherv1", "notificationv1", "discovery")
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_SIZE_BUCKETS = (200, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)
# Methods a client sends are arbitrary tokens; as label values they would mint a series per
# junk method. The standard ones keep their name, anything else counts as "unknown" (what Go's
# promhttp does since CVE-2022-21698).
_KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")
)


class _GroupMetrics:
    def __init__(self, group: str) -> None:
        prefix = f"clair_http_{group}"
        labels = ("handler", "code", "method")
        self.total = Counter(f"{prefix}_request_total", "HTTP requests handled.", labels)
        self.request_size = Histogram(
            f"{prefix}_request_size_bytes", "Request body sizes.", labels, buckets=_SIZE_BUCKETS
        )
        self.response_size = Histogram(
            f"{prefix}_response_size_bytes", "Response body sizes.", labels, buckets=_SIZE_BUCKETS
        )
        self.duration = Histogram(
            f"{prefix}_request_duration_seconds",
            "Request latencies.",
            labels,
            buckets=_DURATION_BUCKETS,
        )
        self.in_flight = Gauge(f"{prefix}_in_flight_requests", "Requests in flight.", ["handler"])
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}

    def observe(
        self, labels: tuple[str, str, str], elapsed: float, request_size: int, response_size: int
    ) -> None:
        # Resolving labelled children costs more than observing; keep them per label set.
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = (
                self.total.labels(*labels),
                self.duration.labels(*labels),
                self.request_size.labels(*labels),
                self.response_size.labels(*labels),
            )
        total, duration, req_size, resp_size = children
        total.inc()
        duration.observe(elapsed)
        req_size.observe(request_size)
        resp_size.observe(response_size)


METRICS = {group: _GroupMetrics(group) for group in GROUPS}
CONCURRENCY_LIMITED = Counter(
    "clair_http_concurrencylimited_total",
    "Requests refused by the request-concurrency limit.",
    ["endpoint", "method"],
)


def group_for(path: str) -> str:
    if path.startswith("/indexer/"):
        return "indexerv1"
    if path.startswith("/matcher/"):
        return "matcherv1"
    if path.startswith("/notifier/"):
        return "notificationv1"
    return "discovery"


def handler_label(pattern: str) -> str:
    """`/indexer/api/v1/index_report/{digest}` → `/indexer/api/v1/index_report/:digest`."""
    out = []
    for segment in pattern.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            segment = ":" + segment[1:-1].split(":", 1)[0]
        out.append(segment)
    return "/".join(out)


def method_label(method: str) -> str:
    return method.lower() if method in _KNOWN_METHODS else "unknown"


def new_request_id() -> str:
    # Ids correlate log lines; they need not be unpredictable, so no urandom syscall per request.
    return f"{random.getrandbits(64):016x}"


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes
        self.tracer = trace.get_tracer("clair.http")
        self._gauges: dict[str, Any] = {}

    def _route_pattern(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match != Match.NONE and isinstance(route, Route):
                return handler_label(route.path)
        return "unknown"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        handler = self._route_pattern(scope)
        metrics = METRICS[group_for(path)]
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        request_size = 0
        response_size = 0

        async def counting_receive() -> Message:
            nonlocal request_size
            message = await receive()
            if message["type"] == "http.request":
                request_size += len(message.get("body", b""))
            return message

        async def observing_send(message: Message) -> None:
            nonlocal status, response_size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                response_size += len(message.get("body", b""))
            await send(message)

        gauge = self._gauges.get(handler)
        if gauge is None:
            gauge = self._gauges[handler] = metrics.in_flight.labels(handler)
        gauge.inc()
        try:
            # Spans cost microseconds even unsampled; skip them unless an SDK tracer exports.
            if isinstance(self.tracer, SDKTracer):
                # A peer's W3C `traceparent` makes this span part of the caller's trace.
                carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                with self.tracer.start_as_current_span(
                    f"{method} {handler}",
                    context=propagate.extract(carrier),
                    kind=trace.SpanKind.SERVER,
                    attributes={
                        "http.method": method,
                        "http.route": handler,
                        "request_id": request_id,
                    },
                ) as span:
                    await self.app(scope, counting_receive, observing_send)
                    span.set_attribute("http.status_code", status)
            else:
                await self.app(scope, counting_receive, observing_send)
        finally:
            gauge.dec()
            elapsed = time.perf_counter() - started
            metrics.observe(
                (handler, str(status), method_label(method)), elapsed, request_size, response_size
            )
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "handled HTTP request",
                    extra={
                        "request_id": request_id,
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
