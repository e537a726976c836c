"""The bounded cache every service keeps its caches in."""

from __future__ import annotations

from clair_common.cache import BoundedCache


def test_least_recently_used_leave_first_within_the_bound() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(10, len)
    for key in "abcde":
        assert cache.put(key, b"xx")
    assert cache.total == 10 and len(cache) == 5
    assert cache.get("a") == b"xx"  # a is now the most recently used
    assert cache.peek("b") == b"xx"  # peek leaves b the oldest
    cache.put("f", b"yyy")  # three bytes over: b and c must go
    assert list(cache) == ["d", "e", "a", "f"]
    assert cache.total == 9


def test_replacing_a_key_recounts_its_cost() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(10, len)
    cache.put("a", b"1234")
    cache.put("a", b"12")
    assert cache.total == 2 and len(cache) == 1
    assert cache.pop("a") == b"12" and cache.total == 0
    assert cache.pop("a") is None


def test_an_entry_over_its_share_is_refused_and_drops_the_old_value() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(16, len, max_share=4)
    assert cache.put("a", b"1234")
    assert not cache.put("a", b"12345"), "over 16 // 4 bytes"
    assert "a" not in cache and cache.total == 0


def test_a_zero_bound_keeps_nothing_that_costs() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(0, len)
    assert not cache.put("a", b"x")
    assert len(cache) == 0
    cache.put("b", b"x")
    cache.clear()
    assert cache.total == 0
