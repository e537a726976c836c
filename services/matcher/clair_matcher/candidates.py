"""Candidate vulnerabilities by query key, shared between reports.

A registry's images share most of their packages (base images), and every new update operation
invalidates every cached report at once: the reports recomputed then ask the database for the
same (package, distribution) keys over and over. The candidates of a key are a function of
the stored vulnerabilities, which change only through new update operations (or the garbage
collection of old ones, whose rows were no longer current anyway). So they are kept for one
*generation*, the set of each updater's newest operation as a report's database snapshot sees
it, and all dropped when a snapshot shows another.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from clair_common.cache import BoundedCache
from clair_common.config.models import DEFAULT_CANDIDATE_CACHE_ROWS
from clair_common.models import Vulnerability

Generation = tuple[tuple[str, str, str], ...]  # (kind, updater, ref) of each newest operation
Candidates = dict[int, Vulnerability]  # vulnerability id → partial rule candidate


def _rows(found: Candidates) -> int:
    return max(len(found), 1)  # an empty answer is worth keeping too


class CandidateCache:
    """Least recently used out, bounded by the number of candidate rows held."""

    def __init__(self, max_rows: int = DEFAULT_CANDIDATE_CACHE_ROWS) -> None:
        self.max_rows = max_rows
        self.generation: Generation | None = None
        self._entries: BoundedCache[Hashable, Candidates] = BoundedCache(
            max_rows, _rows, max_share=16
        )

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def rows(self) -> int:
        return self._entries.total

    def use(self, refs: Sequence[tuple[str, str, str]]) -> None:
        """Enter the generation of a snapshot: another one drops everything kept."""
        generation = tuple(refs)
        if generation != self.generation:
            self._entries.clear()
            self.generation = generation

    def get(self, key: Hashable) -> Candidates | None:
        return self._entries.get(key)

    def put(self, key: Hashable, found: Candidates) -> None:
        """Keeps `found` (never changed afterwards: callers only read it)."""
        self._entries.put(key, found)
