"""Request metrics and spans, the request-concurrency limit, and the introspection server."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from clair_common.http.app import build_api_app
from clair_common.http.introspection import Readiness, build_introspection_app
from clair_common.http.limit import ConcurrencyLimitMiddleware
from clair_common.http.observe import ObserveMiddleware, handler_label
from clair_common.http.routes import Operation
from tests.common.test_http_app import DIGEST, client, serving, tiny_operations

STATE_LABELS = {"code": "200", "handler": "/indexer/api/v1/index_state", "method": "get"}


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_handler_label_uses_colon_parameters() -> None:
    assert handler_label("/indexer/api/v1/index_report/{digest}") == (
        "/indexer/api/v1/index_report/:digest"
    )
    assert handler_label("/matcher/api/v1/internal/update_operation/{ref:str}") == (
        "/matcher/api/v1/internal/update_operation/:ref"
    )
    assert handler_label("/indexer/api/v1/index_state") == "/indexer/api/v1/index_state"


async def test_request_metrics_carry_clairs_names_and_route_labels() -> None:
    report_labels = {
        "code": "404",
        "handler": "/indexer/api/v1/index_report/:digest",
        "method": "get",
    }
    boom_labels = {"code": "500", "handler": "/test/boom", "method": "get"}
    before_state = sample("clair_http_indexerv1_request_total", STATE_LABELS)
    before_report = sample("clair_http_indexerv1_request_total", report_labels)
    before_boom = sample("clair_http_discovery_request_total", boom_labels)
    before_latency = sample("clair_http_indexerv1_request_duration_seconds_count", STATE_LABELS)

    async with serving(build_api_app(tiny_operations())) as url, client() as http:
        for _ in range(3):
            async with http.get(f"{url}/indexer/api/v1/index_state") as resp:
                assert resp.status == 200
        async with http.get(f"{url}/indexer/api/v1/index_report/sha256:{'0' * 64}") as resp:
            assert resp.status == 404
        async with http.get(f"{url}/test/boom") as resp:
            assert resp.status == 500

    assert sample("clair_http_indexerv1_request_total", STATE_LABELS) == before_state + 3
    assert sample("clair_http_indexerv1_request_total", report_labels) == before_report + 1
    assert sample("clair_http_discovery_request_total", boom_labels) == before_boom + 1
    assert (
        sample("clair_http_indexerv1_request_duration_seconds_count", STATE_LABELS)
        == before_latency + 3
    )
    size = sample("clair_http_indexerv1_response_size_bytes_sum", STATE_LABELS)
    assert size >= 3 * len(b'{"state":"s1"}')
    assert (
        sample("clair_http_indexerv1_in_flight_requests", {"handler": STATE_LABELS["handler"]}) == 0
    )

    exposition = generate_latest().decode()
    assert (
        'clair_http_indexerv1_request_total{code="200",'
        'handler="/indexer/api/v1/index_state",method="get"}'
    ) in exposition
    assert 'handler="/indexer/api/v1/index_report/:digest"' in exposition


async def test_request_spans_name_the_route() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = build_api_app(tiny_operations())
    async with serving(app) as url, client() as http:
        async with http.get(f"{url}/robots.txt") as resp:  # builds the middleware stack
            assert resp.status == 200
        # The stack is built lazily by Starlette; point its tracer at a private provider rather
        # than installing a process-wide one other tests would inherit.
        observe = find_middleware(app.middleware_stack, ObserveMiddleware)
        observe.tracer = provider.get_tracer("test")
        async with http.get(f"{url}/indexer/api/v1/index_report/{DIGEST}") as resp:
            assert resp.status == 200
    (span,) = exporter.get_finished_spans()
    assert span.name == "GET /indexer/api/v1/index_report/:digest"
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/indexer/api/v1/index_report/:digest"
    assert span.attributes["http.status_code"] == 200
    assert len(str(span.attributes["request_id"])) == 16


def find_middleware(app: Any, kind: type[Any]) -> Any:
    while app is not None:
        if isinstance(app, kind):
            return app
        app = getattr(app, "app", None)
    raise AssertionError(f"{kind.__name__} not in the middleware stack")


async def test_concurrency_limit_answers_429_when_saturated() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(_: Request) -> Response:
        entered.set()
        await release.wait()
        return Response(b"done")

    limit = Middleware(
        ConcurrencyLimitMiddleware,
        limit=1,
        applies=lambda method, path: path == "/test/slow",
        endpoints=frozenset({"/test/slow"}),
    )
    app = build_api_app(
        tiny_operations(Operation("GET", "/test/slow", slow, "Slow", "slow", "internal")),
        extra_middleware=[limit],
    )
    limited_labels = {"endpoint": "/test/slow", "method": "get"}
    before = sample("clair_http_concurrencylimited_total", limited_labels)
    async with serving(app) as url, client() as http:

        async def get(path: str) -> tuple[int, bytes]:
            async with http.get(url + path) as resp:
                return resp.status, await resp.read()

        first = asyncio.create_task(get("/test/slow"))
        await asyncio.wait_for(entered.wait(), 5)
        status, body = await get("/test/slow")
        assert status == 429
        assert orjson.loads(body) == {
            "code": "too-many-requests",
            "message": "server handling too many requests",
        }
        # Routes the limit does not apply to are still served.
        assert (await get("/test/small"))[0] == 200
        release.set()
        assert await asyncio.wait_for(first, 5) == (200, b"done")
        assert (await get("/test/slow")) == (200, b"done")  # the slot was given back
    assert sample("clair_http_concurrencylimited_total", limited_labels) == before + 1


async def test_introspection_readiness_health_and_metrics() -> None:
    registry = CollectorRegistry()
    probe = Counter(
        "clair_test_probe_total", "A counter only this test registers.", registry=registry
    )
    probe.inc(2)
    readiness = Readiness()
    app = build_introspection_app(readiness, metrics_path="/custom-metrics", registry=registry)
    async with serving(app) as url, client() as http:
        async with http.get(f"{url}/readyz") as resp:
            assert resp.status == 503
            assert resp.headers["Cache-Control"] == "no-store"
        readiness.ready = True
        async with http.get(f"{url}/readyz") as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "no-store"
            assert await resp.read() == b""
        async with http.post(f"{url}/readyz") as resp:
            assert resp.status == 405
        async with http.get(f"{url}/healthz") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            assert await resp.read() == b"ok"
        async with http.get(f"{url}/custom-metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = (await resp.read()).decode()
        async with http.get(f"{url}/metrics") as resp:
            assert resp.status == 404
    families = {family.name: family for family in text_string_to_metric_families(text)}
    (value,) = [s.value for s in families["clair_test_probe"].samples if s.name.endswith("_total")]
    assert value == 2


async def test_introspection_serves_the_global_registry_by_default() -> None:
    async with (
        serving(build_api_app(tiny_operations())) as api,
        client() as http,
        http.get(f"{api}/indexer/api/v1/index_state") as resp,
    ):
        assert resp.status == 200
    async with (
        serving(build_introspection_app(Readiness())) as url,
        client() as http,
        http.get(f"{url}/metrics") as resp,
    ):
        text = (await resp.read()).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert "clair_http_indexerv1_request" in names
    assert "clair_http_concurrencylimited" in names
