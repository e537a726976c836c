"""Cached response bodies: each compressed variant made once, counted by the cache holding it."""

from __future__ import annotations

import gzip
from functools import partial

import zstandard

from clair_common.cache import BoundedCache
from clair_common.http.compress import MIN_SIZE, EncodedBody

DOC = b'{"packages": {}, "note": "' + b"x" * 4000 + b'"}'


def test_a_variant_is_made_once_and_decodes_to_the_body() -> None:
    body = EncodedBody(DOC)
    gz, encoding = body.encoded("gzip")
    assert encoding == "gzip" and gzip.decompress(gz) == DOC
    assert body.encoded("gzip")[0] is gz, "made again"
    zs, encoding = body.encoded("zstd")
    assert encoding == "zstd" and zstandard.ZstdDecompressor().decompress(zs) == DOC
    assert body.size == len(DOC) + len(gz) + len(zs)
    assert body.encoded(None) == (DOC, None)


def test_small_bodies_go_as_they_are() -> None:
    small = EncodedBody(b"x" * (MIN_SIZE - 1))
    assert small.encoded("gzip") == (small.identity, None)
    assert small.size == MIN_SIZE - 1


def test_the_cache_counts_variants_as_they_are_made() -> None:
    gzip_size = len(EncodedBody(DOC).encoded("gzip")[0])
    bound = len(DOC) + gzip_size  # room for one variant, not two
    cache: BoundedCache[str, EncodedBody] = BoundedCache(bound, lambda b: b.size)
    held = EncodedBody(DOC, partial(cache.recost, "a"))
    cache.put("a", held)
    assert cache.total == len(DOC)
    gz, _ = held.encoded("gzip")
    assert cache.total == len(DOC) + len(gz)
    held.encoded("zstd")  # now over the bound: the entry goes
    assert "a" not in cache and cache.total == 0
    held.encoded("deflate")  # a body no longer held changes nothing
    assert cache.total == 0
