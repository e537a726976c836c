"""OTLP exporters trust what every other client trusts (`clair_common.tls`).

A real OTLP receiver serves TLS with a certificate from a test CA that exists only as a `.cert`
file in a directory named by SSL_CERT_DIR (as Quay mounts `extra_ca_cert_*`). Spans over gRPC
and HTTP, and metrics over gRPC, exported through the exporters built from Clair's config
blocks, arrive; without SSL_CERT_DIR nothing does (gRPC's and requests' own bundles do not
know the CA).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from clair_common.config.telemetry import OTLPGRPC, OTLPHTTP, OTLPSignal
from clair_common.otlp import grpc_metric_exporter, span_exporter
from tests.common import test_metrics_push, test_tracing
from tests.fixtures.certs import Issued, TestCA

TIMEOUT = timedelta(seconds=2)


@dataclass(frozen=True)
class Collector:
    ca_dir: Path
    server: Issued


@pytest.fixture
def collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Collector:
    ca_dir = tmp_path / "extra-ca"
    ca_dir.mkdir()
    ca = TestCA(ca_dir / "extra_ca_cert_collector.cert")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for name in ("CERTIFICATE", "TRACES_CERTIFICATE", "METRICS_CERTIFICATE"):
        monkeypatch.delenv(f"OTEL_EXPORTER_OTLP_{name}", raising=False)
    return Collector(ca_dir, ca.issue(tmp_path, "collector"))


def grpc_credentials(issued: Issued) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(issued.key.read_bytes(), issued.cert.read_bytes())])


def https_context(issued: Issued) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    return context


def export_span(otlp: OTLPSignal) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "tls-test"}))
    provider.add_span_processor(SimpleSpanProcessor(span_exporter(otlp)))
    with provider.get_tracer("test").start_as_current_span("over tls"):
        pass
    provider.shutdown()


def until(check: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


Receiver = Callable[[Issued], AbstractContextManager[tuple[str, Any]]]
TRANSPORTS: dict[str, tuple[Receiver, Callable[[str], OTLPSignal]]] = {
    "grpc": (
        lambda issued: test_tracing.grpc_receiver(grpc_credentials(issued)),
        lambda endpoint: OTLPSignal(grpc=OTLPGRPC(endpoint=endpoint, timeout=TIMEOUT)),
    ),
    "http": (
        lambda issued: test_tracing.http_receiver(https_context(issued)),
        lambda endpoint: OTLPSignal(http=OTLPHTTP(endpoint=endpoint, timeout=TIMEOUT)),
    ),
}


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_spans_reach_a_collector_whose_ca_is_only_in_ssl_cert_dir(
    transport: str, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver, config = TRANSPORTS[transport]
    with receiver(collector.server) as (endpoint, received):
        export_span(config(endpoint))  # no SSL_CERT_DIR: the handshake fails, nothing arrives
        assert not received.spans
        monkeypatch.setenv(
            "SSL_CERT_DIR", f"{collector.ca_dir.parent / 'absent'}:{collector.ca_dir}"
        )
        export_span(config(endpoint))
        assert until(lambda: bool(received.spans)), "no span arrived over TLS"
        assert received.spans[0][0] == "tls-test"


def test_metrics_reach_a_grpc_collector_whose_ca_is_only_in_ssl_cert_dir(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_DIR", str(collector.ca_dir))
    with test_metrics_push.grpc_receiver(grpc_credentials(collector.server)) as (endpoint, got):
        exporter = grpc_metric_exporter(OTLPGRPC(endpoint=endpoint, timeout=TIMEOUT))
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
        provider = MeterProvider(metric_readers=[reader])
        provider.get_meter("test").create_counter("tls_test_total").add(1)
        provider.shutdown()  # exports once
        assert until(lambda: "tls_test_total" in got.names), "no metric arrived over TLS"
