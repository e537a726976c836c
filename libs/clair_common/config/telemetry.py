"""`trace` and `metrics` sections (Clair's `config/introspection.go` and `config/otlp.go`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clair_common.config.base import TLS, ConfigModel
from clair_common.config.duration import GoDuration

__all__ = [
    "OTLPGRPC",
    "OTLPHTTP",
    "Jaeger",
    "Metrics",
    "OTLPSignal",
    "Prometheus",
    "Sentry",
    "Trace",
]


class _OTLPCommon(ConfigModel):
    compression: Literal["", "none", "gzip"] = ""
    # host:port of the collector, not a URL (defaults: localhost:4318 HTTP, localhost:4317 gRPC).
    endpoint: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    insecure: bool = False
    timeout: GoDuration | None = None
    client_tls: TLS | None = None


class OTLPHTTP(_OTLPCommon):
    url_path: str = ""


class OTLPGRPC(_OTLPCommon):
    reconnect: GoDuration | None = None
    service_config: str = ""


class OTLPSignal(ConfigModel):
    """`otlp` block of `trace` or `metrics`: one of (or, with a lint warning, both) transports."""

    http: OTLPHTTP | None = None
    grpc: OTLPGRPC | None = None


class _JaegerAgent(ConfigModel):
    endpoint: str = ""


class _JaegerCollector(ConfigModel):
    username: str | None = None
    password: str | None = None
    endpoint: str = ""


class Jaeger(ConfigModel):
    """Deprecated in Clair (use OTLP); still accepted so existing files load."""

    tags: dict[str, str] = Field(default_factory=dict)
    agent: _JaegerAgent = Field(default_factory=_JaegerAgent)
    collector: _JaegerCollector = Field(default_factory=_JaegerCollector)
    service_name: str = ""
    buffer_max: int = 0


class Sentry(ConfigModel):
    """Accepted for compatibility; Sentry tracing is a no-op here."""

    dsn: str = ""
    environment: str = ""


class Trace(ConfigModel):
    name: Literal["", "otlp", "jaeger", "stdout", "sentry"] = ""
    # None: parent-based sampling with nothing sampled at the root (Clair's behaviour).
    probability: float | None = Field(default=None, ge=0.0, le=1.0)
    jaeger: Jaeger = Field(default_factory=Jaeger)
    otlp: OTLPSignal = Field(default_factory=OTLPSignal)
    sentry: Sentry = Field(default_factory=Sentry)


class Prometheus(ConfigModel):
    # URL path of the exposition endpoint on the introspection server; None means "/metrics".
    endpoint: str | None = None


class Metrics(ConfigModel):
    # "" means prometheus.
    name: Literal["", "prometheus", "otlp", "stdout"] = ""
    prometheus: Prometheus = Field(default_factory=Prometheus)
    otlp: OTLPSignal = Field(default_factory=OTLPSignal)

    @property
    def prometheus_path(self) -> str | None:
        """Path to serve Prometheus metrics on, or None when another exporter is chosen."""
        if self.name not in ("", "prometheus"):
            return None
        return self.prometheus.endpoint or "/metrics"
