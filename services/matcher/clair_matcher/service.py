"""The matcher: vulnerability reports and update operations, satisfying clients.Matcher."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

import orjson

from clair_common.models import IndexReport, UpdateDiff, UpdateOperation, VulnerabilityReport
from clair_common.vulnerable import Matcher, default_matchers
from clair_matcher.enrichers import Enricher, default_enrichers
from clair_matcher.enrichment import enrich_report
from clair_matcher.matching import match_report
from clair_matcher.store import MatcherStore


class MatcherService:
    def __init__(
        self,
        store: MatcherStore,
        matchers: Sequence[Matcher] | None = None,
        enrichers: Sequence[Enricher] | None = None,
    ) -> None:
        self.store = store
        # None: every matcher, as Clair does when `matchers.names` is unset.
        self.matchers: Sequence[Matcher] = (
            default_matchers() if matchers is None else list(matchers)
        )
        # None: Clair's enrichers (CVSS); `matcher.disable_enrichment` passes none.
        self.enrichers: Sequence[Enricher] = (
            default_enrichers() if enrichers is None else list(enrichers)
        )

    async def initialized(self) -> bool:
        return await self.store.initialized()

    async def scan(self, report: IndexReport) -> VulnerabilityReport:
        """Match the report; raises MatchError (HTTP 500) where Clair fails the report."""
        out = await match_report(self.store.pool, report, self.matchers)
        if self.enrichers:
            out.enrichments = await enrich_report(self.store.pool, out, self.enrichers)
        return out

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

    async def latest_refs(self) -> list[tuple[str, str, str]]:
        """(kind, updater, ref) of each updater's newest operation: what `scan` matches against."""
        return await self.store.latest_refs()

    def report_etag(
        self, report: IndexReport, index_state: str, refs: Sequence[tuple[str, str, str]]
    ) -> str:
        """The vulnerability report's validator, known before matching (so 304s cost no match).

        A report is a function of the index report (its content, produced under the indexer's
        scanner state), the vulnerabilities and enrichments of each updater's newest operation,
        and the configured matchers. `refs` must be read before scanning: an update landing in
        between then yields newer content under the older tag, which the next request corrects,
        never older content under a newer tag.
        """
        h = hashlib.sha256(b"clair vulnerability report 1\n")
        h.update(f"{report.manifest_hash}\n{index_state}\n".encode())
        h.update(hashlib.sha256(orjson.dumps(report.to_json())).digest())
        for kind, updater, ref in refs:
            h.update(f"{kind} {updater} {ref}\n".encode())
        for matcher in self.matchers:
            h.update(f"matcher {matcher.name}\n".encode())
        for enricher in self.enrichers:
            h.update(f"enricher {enricher.name}\n".encode())
        return f'"{h.hexdigest()[:40]}"'
