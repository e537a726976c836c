"""The matcher's cache of serialized vulnerability reports by ETag."""

from __future__ import annotations

from clair_common.config import default_config, validate_document
from clair_matcher.service import ReportCache


def test_least_recently_used_reports_leave_first() -> None:
    cache = ReportCache(max_bytes=400)
    for tag in "abc":
        cache.put(tag, tag.encode() * 50)
    assert cache.get("a") == b"a" * 50  # a is now the most recently used
    for tag in "defgh":
        cache.put(tag, tag.encode() * 50)
    assert cache.size == 400 and len(cache) == 8  # exactly full: nothing left yet
    cache.put("i", b"i" * 50)  # one must go, and b is the oldest
    assert cache.get("b") is None
    assert cache.get("a") == b"a" * 50
    assert cache.size == 400 and len(cache) == 8


def test_compressed_variants_live_and_leave_with_their_report() -> None:
    cache = ReportCache(max_bytes=1000)
    cache.put("x", b"z" * 50, "gzip")
    assert cache.get("x", "gzip") is None, "a variant without its JSON is not kept"
    cache.put("x", b"j" * 100)
    cache.put("x", b"z" * 50, "gzip")
    assert cache.get("x") == b"j" * 100
    assert cache.get("x", "gzip") == b"z" * 50
    assert cache.get("x", "zstd") is None
    assert cache.size == 150
    cache.put("x", b"z" * 40, "gzip")  # replaced, not added
    assert cache.size == 140
    for n in range(9):
        cache.put(f"other{n}", b"o" * 100)
    assert cache.get("x") is None and cache.get("x", "gzip") is None
    assert cache.size <= 1000


def test_one_huge_report_does_not_flush_the_others() -> None:
    cache = ReportCache(max_bytes=800)
    cache.put("small", b"s" * 50)
    cache.put("huge", b"h" * 101)  # over an eighth of the budget
    assert cache.get("huge") is None
    assert cache.get("small") == b"s" * 50


def test_report_cache_size_is_configurable() -> None:
    assert default_config().matcher.report_cache_bytes == 64 * 1024 * 1024
    env = {"CLAIR_MATCHER__REPORT_CACHE_BYTES": "1048576"}
    assert default_config(env).matcher.report_cache_bytes == 1 << 20
    for given, kept in ((0, 0), (-5, 0)):
        doc = {"matcher": {"report_cache_bytes": given}}
        assert validate_document(doc, "test").matcher.report_cache_bytes == kept
