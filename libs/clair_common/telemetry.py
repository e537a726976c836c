"""Logging and OpenTelemetry tracing set-up from the `log_level` and `trace` config keys."""

from __future__ import annotations

import functools
import logging
import platform
import sys
from collections.abc import Awaitable, Callable, Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from prometheus_client import Gauge

log = logging.getLogger("clair")

# Clair's `clair_cmd_version_info` (cmd/build.go): a constant 1 labelled with the build.
VERSION_INFO = Gauge(
    "clair_cmd_version_info",
    "Version information.",
    ["claircore_version", "goversion", "modified", "revision", "version"],
)


def _version() -> str:
    try:
        return version("clair-py")
    except PackageNotFoundError:
        return "(source tree)"


# Labels keep Clair's names; "goversion" carries the interpreter this runs on.
VERSION_INFO.labels(
    claircore_version="",
    goversion=f"{platform.python_implementation().lower()}{platform.python_version()}",
    modified="",
    revision="",
    version=_version(),
).set(1)

_LEVELS = {
    "debug-color": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=_LEVELS.get(level, logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # Per-request lines are debug detail for us; Clair logs them at info, but at thousands
    # of requests a second they drown everything else.
    if level not in ("debug", "debug-color"):
        logging.getLogger("clair.http").setLevel(logging.WARNING)


def setup_tracing(trace_cfg: Any, log_level: str, mode: str) -> None:
    """Clair's sampler rules: always with debug logging, else parent-based ratio, else off."""
    name = getattr(trace_cfg, "name", "") or ""
    if name == "jaeger":
        log.warning('trace.name: "jaeger" was removed from Clair; tracing is off (use "otlp")')
    if name in ("", "sentry", "jaeger"):
        return
    exporter: SpanExporter
    if name == "stdout":
        exporter = ConsoleSpanExporter()
    else:
        from clair_common.config.telemetry import OTLPSignal
        from clair_common.otlp import span_exporter

        otlp = getattr(trace_cfg, "otlp", None)
        exporter = span_exporter(otlp if isinstance(otlp, OTLPSignal) else OTLPSignal())
    sampler: Sampler
    probability = getattr(trace_cfg, "probability", None)
    if log_level in ("debug", "debug-color"):
        sampler = ALWAYS_ON
    elif probability is not None:
        sampler = ParentBased(TraceIdRatioBased(probability))
    else:
        return
    provider = TracerProvider(
        sampler=sampler, resource=Resource.create({"service.name": f"clairv4/{mode}"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


P = ParamSpec("P")
R = TypeVar("R")
_TRACER = trace.get_tracer("clair")


def traced(
    name: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Run the decorated coroutine in a span named `name` when tracing exports (a check of
    the provider's type otherwise: the hot paths pay nothing for spans nobody records)."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not isinstance(trace.get_tracer_provider(), TracerProvider):
                return await function(*args, **kwargs)
            with _TRACER.start_as_current_span(name):
                return await function(*args, **kwargs)

        return wrapper

    return decorate


def start_metrics_push(metrics_cfg: Any, mode: str) -> Any:
    """For `metrics.name: otlp|stdout`, a started MetricsPusher (stop it at exit); else None.

    The period is OpenTelemetry's `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, default 60 s).
    """
    import os

    from clair_common.config.telemetry import Metrics
    from clair_common.metrics_push import MetricsPusher, metric_exporter

    if not isinstance(metrics_cfg, Metrics):
        return None
    exporter = metric_exporter(metrics_cfg)
    if exporter is None:
        return None
    interval = float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")) / 1000
    pusher = MetricsPusher(
        exporter, Resource.create({"service.name": f"clairv4/{mode}"}), interval=interval
    )
    pusher.start()
    return pusher
