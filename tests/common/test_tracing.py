"""One request is one trace across services, exported over OTLP/HTTP and OTLP/gRPC.

A matcher process asks an indexer process for an index report; both export to a real OTLP
receiver run by the test (an HTTP server decoding `ExportTraceServiceRequest`, or a gRPC
TraceService), and the matcher's and the indexer's server spans must share one trace id,
which only the W3C `traceparent` the matcher sends can give them.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from clair_indexer.scanners import default_scanners
from tests.common.test_dropin_configs import keyword_form
from tests.fixtures import otlp
from tests.fixtures.images import build_layer, sha256_digest
from tests.fixtures.server import clair_server, free_port, wait_ready

DIGEST = "sha256:" + "ab" * 32
SCANNERS = {s.name for s in default_scanners()}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: dict[str, str]


@dataclass
class Received:
    spans: list[tuple[str, str, str]] = field(default_factory=list)  # (service, trace id, name)
    full: list[ReceivedSpan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append((service, span.trace_id.hex(), span.name))
                        attributes = {a.key: a.value.string_value for a in span.attributes}
                        self.full.append(
                            ReceivedSpan(
                                service,
                                span.trace_id.hex(),
                                span.span_id.hex(),
                                span.parent_span_id.hex(),
                                span.name,
                                attributes,
                            )
                        )

    def all_named(self, name: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.full if s.name == name]

    def named(self, name: str, traces: set[str]) -> bool:
        with self.lock:
            return any(n == name and t in traces for _, t, n in self.spans)

    def traces_by_service(self) -> dict[str, set[str]]:
        with self.lock:
            found: dict[str, set[str]] = {}
            for service, trace_id, _ in self.spans:
                found.setdefault(service, set()).add(trace_id)
            return found


@contextmanager
def http_receiver(tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, Received]]:
    """An OTLP/HTTP trace receiver on 127.0.0.1 (HTTPS with `tls`, a server context)."""
    received = Received()
    with otlp.http_receiver(otlp.TRACES, received.add, tls) as endpoint:
        yield endpoint, received


@contextmanager
def grpc_receiver(
    credentials: grpc.ServerCredentials | None = None,
) -> Iterator[tuple[str, Received]]:
    """An OTLP/gRPC TraceService on 127.0.0.1 (over TLS with `credentials`)."""
    received = Received()
    with otlp.grpc_receiver(otlp.TRACES, received.add, credentials) as endpoint:
        yield endpoint, received


async def _seed_vulnerability(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO matcher.vuln (hash, updater, name, package_name)"
            " VALUES ('\\x01', 'test', 'CVE-0000-0001', 'none')"
        )
    finally:
        await conn.close()


LAYER = build_layer({"etc/os-release": b'ID=alpine\nVERSION_ID=3.20.0\nNAME="Alpine Linux"\n'})


@contextmanager
def layer_origin(layer: bytes = LAYER) -> Iterator[str]:
    """A loopback HTTP server with one small layer; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(layer)))
            self.end_headers()
            self.wfile.write(layer)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/layer"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_one_trace_spans_matcher_and_indexer(
    transport: str, pg_dsn_sync: str, tmp_path: Path
) -> None:
    receiver = http_receiver if transport == "http" else grpc_receiver
    with receiver() as (endpoint, received), ExitStack() as stack:
        indexer_port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(
            "indexer:\n  migrations: true\n"
            f"matcher:\n  migrations: true\n  disable_updaters: true\n"
            f"  indexer_addr: http://127.0.0.1:{indexer_port}/\n"
            "trace:\n  name: otlp\n  probability: 1\n  otlp:\n"
            f"    {transport}:\n      endpoint: {endpoint}\n      insecure: true\n"
            "      compression: gzip\n      timeout: 10s\n"
            "      headers:\n        x-tenant: clair-test\n"
        )
        database = keyword_form(pg_dsn_sync)
        env = {
            "CLAIR_CONF": str(config),
            "CLAIR_INDEXER__CONNSTRING": database,
            "CLAIR_MATCHER__CONNSTRING": database,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # export promptly
        }
        indexer = stack.enter_context(
            clair_server(
                tmp_path,
                mode="indexer",
                name="indexer",
                env={**env, "CLAIR_HTTP_LISTEN_ADDR": f"127.0.0.1:{indexer_port}"},
            )
        )
        matcher = stack.enter_context(
            clair_server(tmp_path, mode="matcher", name="matcher", env=env)
        )
        wait_ready(indexer)
        wait_ready(matcher)
        # One vulnerability row: the matcher then asks the indexer for the report (else 202).
        asyncio.run(_seed_vulnerability(pg_dsn_sync))
        layer_url = stack.enter_context(layer_origin())
        layers = [{"hash": sha256_digest(LAYER), "uri": layer_url, "headers": {}}]
        manifest = json.dumps({"hash": DIGEST, "layers": layers}).encode()
        post = urllib.request.Request(
            f"http://127.0.0.1:{indexer_port}/indexer/api/v1/index_report",
            data=manifest,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=30) as resp:
            assert resp.status == 201
        url = f"{matcher.api}/matcher/api/v1/vulnerability_report/{DIGEST}"
        with urllib.request.urlopen(url, timeout=30) as resp:  # the matcher asks the indexer
            assert resp.status == 200
        deadline = time.monotonic() + 60
        shared: set[str] = set()
        while time.monotonic() < deadline and not shared:
            found = received.traces_by_service()
            shared = found.get("clairv4/matcher", set()) & found.get("clairv4/indexer", set())
            time.sleep(0.1)
        assert shared, f"no trace shared by matcher and indexer: {received.spans}"
        # The slow step below the request has a span of its own, in the same trace.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not received.named("match report", shared):
            time.sleep(0.1)
        assert received.named("match report", shared), received.spans
        # Indexing's own steps are spans of the POST's trace.
        indexer_traces = received.traces_by_service().get("clairv4/indexer", set())
        steps = ("index manifest", "fetch and scan layer", "fetch layer", "read layer")
        for step in (*steps, "coalesce", "store layer", "store index report"):
            assert received.named(step, indexer_traces), (step, received.spans)
        # One span per scanner under the layer's span, naming the scanner and the layer.
        (layer_span,) = received.all_named("fetch and scan layer")
        scans = received.all_named("scan layer")
        assert {s.attributes["scanner.name"] for s in scans} == SCANNERS, scans
        for scan in scans:
            assert scan.trace_id == layer_span.trace_id
            assert scan.parent_id == layer_span.span_id, (scan, layer_span)
            assert scan.attributes["layer.digest"] == sha256_digest(LAYER)
            assert scan.attributes["scanner.version"]
            assert scan.attributes["scanner.kind"] in ("package", "distribution", "repository")
