"""Logging and OpenTelemetry tracing set-up from the `log_level` and `trace` config keys."""

from __future__ import annotations

import functools
import logging
import platform
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
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


def tracing() -> bool:
    """Whether spans are recorded (an SDK provider is set); a type check, cheap enough for
    hot paths, which skip building spans and their attributes when nobody records them."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def traced(
    name: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Run the decorated coroutine in a span named `name` when tracing exports."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not tracing():
                return await function(*args, **kwargs)
            with _TRACER.start_as_current_span(name):
                return await function(*args, **kwargs)

        return wrapper

    return decorate


def annotate(attributes: Mapping[str, str]) -> None:
    """Set attributes on the current span, when tracing exports."""
    if tracing():
        trace.get_current_span().set_attributes(dict(attributes))


def current_context() -> Context | None:
    """The caller's trace context to hand to a worker thread (which does not inherit it)."""
    return otel_context.get_current() if tracing() else None


@contextmanager
def span(
    name: str, attributes: Mapping[str, str] | None = None, parent: Context | None = None
) -> Iterator[None]:
    """A span named `name` under `parent` (default: the current span) when tracing exports."""
    if not tracing():
        yield
        return
    with _TRACER.start_as_current_span(name, context=parent, attributes=attributes):
        yield


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
