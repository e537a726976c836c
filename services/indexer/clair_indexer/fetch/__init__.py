"""Layer download into a content-addressed disk cache, digest verified while streaming.

The fetcher stores the *compressed* blob under `<cache>/<algo>/<hex>`; `clair_indexer.layer`
decompresses and walks it. Private modules, one job each, behind this public API:
`_cache` (the size-bounded LRU disk cache and pinning), `_flights` (concurrent fetches of one
digest share one download), `_download` (one attempt: redirects, airgap and policy checks,
streaming hash-and-write), `_sink` (the cache file written directly, or behind a streaming
scan so the disk never holds it up), `_retry` (backoff and the minimum rate), `_policy`
(which hosts a manifest may name), `_airgap`, `_media` (compression sniffed and declared),
`_metrics`. `_fetcher.LayerFetcher` puts them together.
"""

from clair_indexer.fetch._airgap import is_private_address
from clair_indexer.fetch._cache import FetchedLayer
from clair_indexer.fetch._errors import AirgapError, FetchError
from clair_indexer.fetch._fetcher import LayerFetcher
from clair_indexer.fetch._media import Compression, declared_compression, sniff_compression
from clair_indexer.fetch._policy import FetchPolicy, PolicyRefused

__all__ = [
    "AirgapError",
    "Compression",
    "FetchError",
    "FetchPolicy",
    "FetchedLayer",
    "LayerFetcher",
    "PolicyRefused",
    "declared_compression",
    "is_private_address",
    "sniff_compression",
]
