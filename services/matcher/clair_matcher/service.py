"""The matcher: vulnerability reports and update operations, satisfying clients.Matcher."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from clair_common.models import IndexReport, UpdateDiff, UpdateOperation, VulnerabilityReport
from clair_common.vulnerable import Matcher, default_matchers
from clair_matcher.matching import match_report
from clair_matcher.store import MatcherStore


class MatcherService:
    def __init__(self, store: MatcherStore, matchers: Sequence[Matcher] | None = None) -> None:
        self.store = store
        # None: every matcher, as Clair does when `matchers.names` is unset.
        self.matchers: Sequence[Matcher] = (
            default_matchers() if matchers is None else list(matchers)
        )

    async def initialized(self) -> bool:
        return await self.store.initialized()

    async def scan(self, report: IndexReport) -> VulnerabilityReport:
        """Match the report; raises MatchError (HTTP 500) where Clair fails the report."""
        return await match_report(self.store.pool, report, self.matchers)

    async def update_operations(
        self, kind: str = "vulnerability", *, latest: bool = False, updaters: Sequence[str] = ()
    ) -> dict[str, list[UpdateOperation]]:
        return await self.store.update_operations(kind, latest=latest, updaters=updaters)

    async def latest_ref(self, kind: str = "vulnerability") -> str | None:
        return await self.store.latest_ref(kind)

    async def update_diff(self, prev: str | None, cur: str) -> UpdateDiff:
        diff = await self.store.update_diff(uuid.UUID(prev) if prev else None, uuid.UUID(cur))
        if diff is None:
            raise LookupError(f"unknown update operation in ({prev}, {cur})")
        return diff

    async def delete_update_operations(self, refs: Sequence[str]) -> int:
        return await self.store.delete_update_operations([uuid.UUID(r) for r in refs])
