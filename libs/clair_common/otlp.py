"""OTLP exporters built from Clair's `trace.otlp` and `metrics.otlp` blocks, over HTTP or gRPC.

Clair's keys: `endpoint` is the collector's host:port (defaults localhost:4318 for HTTP,
localhost:4317 for gRPC), `insecure` means plain text, `url_path` the HTTP path (default
/v1/traces), `headers`, `compression` ("gzip" or none), `timeout`, and `client_tls` the
client certificate and the CA (`root_ca`) to verify the collector with. With both
transports configured, HTTP is used (a lint warns).

The collector is verified against what every other client trusts (`clair_common.tls`: the
system store, `SSL_CERT_FILE`, every PEM in each `SSL_CERT_DIR` directory) plus `root_ca`, not
against the bundles gRPC and requests carry of their own.
"""

from __future__ import annotations

from typing import Any

import requests
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter
from requests.adapters import HTTPAdapter

from clair_common.config.base import TLS
from clair_common.config.telemetry import OTLPGRPC, OTLPHTTP, OTLPSignal
from clair_common.tls import new_client_context, trusted_pem

__all__ = ["grpc_metric_exporter", "http_metric_exporter", "span_exporter"]

_HTTP_DEFAULT = "localhost:4318"
_GRPC_DEFAULT = "localhost:4317"


def _timeout(seconds: Any) -> float | None:
    return seconds.total_seconds() if seconds is not None else None


class _TrustingAdapter(HTTPAdapter):
    """requests' adapter over a `clair_common.tls` context instead of certifi's bundle alone."""

    def __init__(self, cafile: str | None) -> None:
        self._context = new_client_context(cafile)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def _http_session(tls: TLS | None) -> requests.Session:
    session = requests.Session()
    session.mount("https://", _TrustingAdapter((tls.root_ca or None) if tls else None))
    return session


def _http_kwargs(cfg: OTLPHTTP, default_path: str) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http import Compression

    endpoint = cfg.endpoint or _HTTP_DEFAULT
    if "://" not in endpoint:
        scheme = "http" if cfg.insecure else "https"
        endpoint = f"{scheme}://{endpoint}{cfg.url_path or default_path}"
    tls: TLS | None = cfg.client_tls
    return {
        "endpoint": endpoint,
        "certificate_file": (tls.root_ca or None) if tls else None,
        "client_certificate_file": (tls.cert or None) if tls else None,
        "client_key_file": (tls.key or None) if tls else None,
        "headers": dict(cfg.headers) or None,
        "timeout": _timeout(cfg.timeout),
        "compression": Compression.Gzip if cfg.compression == "gzip" else Compression.NoCompression,
        "session": _http_session(tls),
    }


def _grpc_kwargs(cfg: OTLPGRPC) -> dict[str, Any]:
    import grpc

    credentials = None
    tls = cfg.client_tls
    if not cfg.insecure:

        def read(path: str) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as file:
                return file.read()

        credentials = grpc.ssl_channel_credentials(
            root_certificates=trusted_pem((tls.root_ca or None) if tls else None),
            private_key=read(tls.key) if tls else None,
            certificate_chain=read(tls.cert) if tls else None,
        )
    return {
        "endpoint": cfg.endpoint or _GRPC_DEFAULT,
        "insecure": cfg.insecure,
        "credentials": credentials,
        "headers": dict(cfg.headers) or None,
        "timeout": _timeout(cfg.timeout),
        "compression": grpc.Compression.Gzip if cfg.compression == "gzip" else None,
    }


def span_exporter(otlp: OTLPSignal) -> SpanExporter:
    """The exporter for a `trace.otlp` block (HTTP when both or neither are set)."""
    if otlp.http is None and otlp.grpc is not None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GRPCSpanExporter,
        )

        return GRPCSpanExporter(**_grpc_kwargs(otlp.grpc))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(**_http_kwargs(otlp.http or OTLPHTTP(), "/v1/traces"))


def http_metric_exporter(cfg: OTLPHTTP | None) -> MetricExporter:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(**_http_kwargs(cfg or OTLPHTTP(), "/v1/metrics"))


def grpc_metric_exporter(cfg: OTLPGRPC) -> MetricExporter:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(**_grpc_kwargs(cfg))
