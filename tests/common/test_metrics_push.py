"""`metrics.name: otlp|stdout`: Clair's metric families pushed to a real OTLP receiver (HTTP and
gRPC, decoded with the OpenTelemetry protocol definitions) or printed, from a running server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
)

from tests.common.test_dropin_configs import keyword_form
from tests.fixtures import otlp
from tests.fixtures.server import clair_server, wait_ready

WANTED = {"clair_cmd_version_info", "pgxpool_max_conns", "pgxpool_acquire_count"}


@dataclass
class Received:
    names: dict[str, str] = field(default_factory=dict)  # metric name -> data kind
    services: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        with self.lock:
            for resource in request.resource_metrics:
                for attr in resource.resource.attributes:
                    if attr.key == "service.name":
                        self.services.add(attr.value.string_value)
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        self.names[metric.name] = metric.WhichOneof("data") or ""


@contextmanager
def http_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()
    with otlp.http_receiver(otlp.METRICS, received.add) as endpoint:
        yield endpoint, received


@contextmanager
def grpc_receiver(
    credentials: grpc.ServerCredentials | None = None,
) -> Iterator[tuple[str, Received]]:
    """An OTLP/gRPC MetricsService on 127.0.0.1 (over TLS with `credentials`)."""
    received = Received()
    with otlp.grpc_receiver(otlp.METRICS, received.add, credentials) as endpoint:
        yield endpoint, received


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_metrics_are_pushed_over_otlp(transport: str, pg_dsn_sync: str, tmp_path: Path) -> None:
    receiver = http_receiver if transport == "http" else grpc_receiver
    with receiver() as (endpoint, received):
        config = tmp_path / "config.yaml"
        config.write_text(
            "indexer:\n  migrations: true\n"
            f"metrics:\n  name: otlp\n  otlp:\n    {transport}:\n"
            f"      endpoint: {endpoint}\n      insecure: true\n"
        )
        env = {
            "CLAIR_CONF": str(config),
            "CLAIR_INDEXER__CONNSTRING": keyword_form(pg_dsn_sync),
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
        }
        with clair_server(tmp_path, mode="indexer", env=env) as server:
            wait_ready(server)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not set(received.names) >= WANTED:
                time.sleep(0.1)
        assert set(received.names) >= WANTED, sorted(received.names)
        assert received.names["pgxpool_max_conns"] == "gauge"
        assert received.services == {"clairv4/indexer"}
        histograms = [n for n, kind in received.names.items() if kind == "histogram"]
        assert histograms, received.names


def test_metrics_are_printed_with_stdout(pg_dsn_sync: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("indexer:\n  migrations: true\nmetrics:\n  name: stdout\n")
    env = {
        "CLAIR_CONF": str(config),
        "CLAIR_INDEXER__CONNSTRING": keyword_form(pg_dsn_sync),
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }
    with clair_server(tmp_path, mode="indexer", env=env) as server:
        wait_ready(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "clair_cmd_version_info" not in server.log_text():
            time.sleep(0.1)
        assert "clair_cmd_version_info" in server.log_text()
