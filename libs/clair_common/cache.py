"""One bounded cache for every service: least recently used out, bounded by a cost per entry.

The cost is whatever the holder bounds: bytes of a serialized body, rows of a query answer. An
entry costing more than `max_cost // max_share` is not kept, so that one huge value cannot
flush all the others; a bound of 0 keeps nothing (the cache is off).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    def __init__(self, max_cost: int, cost: Callable[[V], int], *, max_share: int = 1) -> None:
        self.max_cost = max(max_cost, 0)
        self.total = 0  # the cost of everything held
        self._cost = cost
        self._max_entry = self.max_cost // max(max_share, 1)
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()  # least recent first

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: K) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._entries))

    def get(self, key: K) -> V | None:
        """The value, now the most recently used; None when not held."""
        held = self._entries.get(key)
        if held is None:
            return None
        self._entries.move_to_end(key)
        return held[0]

    def peek(self, key: K) -> V | None:
        """The value without touching its recency."""
        held = self._entries.get(key)
        return None if held is None else held[0]

    def put(self, key: K, value: V) -> bool:
        """Keep `value` under `key` (replacing what was there); False when it costs too much."""
        cost = self._cost(value)
        if cost > self._max_entry:
            self.pop(key)
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.total -= old[1]
        self._entries[key] = (value, cost)
        self.total += cost
        while self.total > self.max_cost:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.total -= evicted
        return True

    def recost(self, key: K) -> None:
        """Count the value under `key` again after it changed in place (as `put` does)."""
        held = self._entries.get(key)
        if held is not None:
            self.put(key, held[0])

    def pop(self, key: K) -> V | None:
        held = self._entries.pop(key, None)
        if held is None:
            return None
        self.total -= held[1]
        return held[0]

    def clear(self) -> None:
        self._entries.clear()
        self.total = 0
