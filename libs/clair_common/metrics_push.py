"""`metrics.name: otlp|stdout`: the Prometheus registry pushed through an OpenTelemetry exporter.

Every metric here is a prometheus_client metric (Clair's names, labels and buckets), so instead
of a second set of instruments the registry is read on a period and its families converted
to OTLP points: counters as monotonic cumulative sums, gauges as gauges, histograms with their
bucket bounds. The exporter is OTLP/HTTP or OTLP/gRPC per `metrics.otlp` (same keys as
`trace.otlp`), or the console for `stdout`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from clair_common.config.telemetry import Metrics, OTLPSignal

__all__ = ["MetricsPusher", "metric_exporter", "to_metrics_data"]

log = logging.getLogger("clair.metrics")
_SCOPE = InstrumentationScope("clair")
_CUMULATIVE = AggregationTemporality.CUMULATIVE


def _number_points(family: PromMetric, suffix: str, start: int, now: int) -> list[NumberDataPoint]:
    return [
        NumberDataPoint(dict(s.labels), start, now, s.value)
        for s in family.samples
        if s.name == family.name + suffix
    ]


def _histogram_points(family: PromMetric, start: int, now: int) -> list[HistogramDataPoint]:
    series: dict[tuple[tuple[str, str], ...], dict[str, object]] = {}
    for sample in family.samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        entry = series.setdefault(tuple(sorted(labels.items())), {"buckets": []})
        if sample.name.endswith("_bucket"):
            entry["buckets"].append((float(sample.labels["le"]), sample.value))  # type: ignore[attr-defined]
        elif sample.name.endswith("_count"):
            entry["count"] = sample.value
        elif sample.name.endswith("_sum"):
            entry["sum"] = sample.value
    points = []
    for key, entry in series.items():
        buckets = sorted(entry["buckets"])  # type: ignore[call-overload]
        cumulative = [int(count) for _, count in buckets]
        per_bucket = [b - a for a, b in zip([0, *cumulative[:-1]], cumulative, strict=True)]
        bounds = [le for le, _ in buckets if le != float("inf")]
        points.append(
            HistogramDataPoint(
                dict(key),
                start,
                now,
                count=int(entry.get("count", 0)),  # type: ignore[call-overload]
                sum=float(entry.get("sum", 0.0)),  # type: ignore[arg-type]
                bucket_counts=per_bucket,
                explicit_bounds=bounds,
                min=float("nan"),
                max=float("nan"),
            )
        )
    return points


def _convert(families: Iterable[PromMetric], start: int, now: int) -> list[Metric]:
    metrics: list[Metric] = []
    for family in families:
        data: Sum | Gauge | Histogram
        if family.type == "counter":
            data = Sum(_number_points(family, "_total", start, now), _CUMULATIVE, True)
            name = family.name + "_total"
        elif family.type == "histogram":
            data = Histogram(_histogram_points(family, start, now), _CUMULATIVE)
            name = family.name
        elif family.type in ("gauge", "unknown"):
            data = Gauge(_number_points(family, "", start, now))
            name = family.name
        else:
            continue  # summaries, info and state sets: none of Clair's families
        if data.data_points:
            metrics.append(Metric(name, family.documentation, family.unit or None, data))
    return metrics


def to_metrics_data(
    registry: CollectorRegistry, resource: Resource, start_unix_nano: int
) -> MetricsData:
    """One snapshot of `registry` as OTLP metrics data."""
    now = time.time_ns()
    metrics = _convert(registry.collect(), start_unix_nano, now)
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(_SCOPE, metrics, "")], "")])


def metric_exporter(cfg: Metrics) -> MetricExporter | None:
    """The exporter `metrics.name` asks for; None for Prometheus (scraped, not pushed)."""
    if cfg.name == "stdout":
        return ConsoleMetricExporter()
    if cfg.name != "otlp":
        return None
    otlp: OTLPSignal = cfg.otlp
    if otlp.http is None and otlp.grpc is not None:
        from clair_common.otlp import grpc_metric_exporter

        return grpc_metric_exporter(otlp.grpc)
    from clair_common.otlp import http_metric_exporter

    return http_metric_exporter(otlp.http)


class MetricsPusher:
    """Exports the registry every `interval` seconds from a daemon thread until `stop()`."""

    def __init__(
        self,
        exporter: MetricExporter,
        resource: Resource,
        interval: float = 60.0,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.exporter = exporter
        self.resource = resource
        self.interval = interval
        self.registry = registry
        self._start = time.time_ns()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-push", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def push(self) -> None:
        try:
            self.exporter.export(to_metrics_data(self.registry, self.resource, self._start))
        except Exception:
            log.exception("exporting metrics failed")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.push()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.push()  # the last values before exit
        self.exporter.shutdown()
