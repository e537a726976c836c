"""The fetcher's Prometheus metrics (registered once, at import)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FETCH_REQUESTS = Counter(
    "clair_fetcher_requests_total", "Layer fetches by outcome.", ["result"]
)  # result: hit (cache), shared (joined a running download), downloaded, error
LAYER_SIZE = Histogram(
    "clair_fetcher_layer_size_bytes",
    "Compressed size of downloaded layers.",
    buckets=[2**n for n in range(10, 34, 2)],
)
FETCH_DURATION = Histogram(
    "clair_fetcher_duration_seconds",
    "Wall time of layer downloads, retries included.",
    buckets=[0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
)
CACHE_ENTRIES = Gauge("clair_fetcher_cache_entries", "Layer blobs held in the disk cache.")
