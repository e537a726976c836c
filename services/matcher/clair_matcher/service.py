"""The matcher: vulnerability reports and update operations, satisfying clients.Matcher."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import orjson

from clair_common.cache import BoundedCache
from clair_common.clients import Indexer
from clair_common.config.models import (
    DEFAULT_CANDIDATE_CACHE_ROWS,
    DEFAULT_REPORT_CACHE_BYTES,
)
from clair_common.http.compress import EncodedBody
from clair_common.models import (
    IndexReport,
    IndexState,
    UpdateDiff,
    UpdateOperation,
    Vulnerability,
    VulnerabilityReport,
)
from clair_common.telemetry import traced
from clair_common.vulnerable import Matcher, default_matchers
from clair_matcher.candidates import CandidateCache
from clair_matcher.enrichers import Enricher, default_enrichers
from clair_matcher.enrichment import enrich_report
from clair_matcher.matching import match_report
from clair_matcher.store import KIND_ENRICHMENT, MatcherStore


class ReportNotFinished(LookupError):
    """The index report exists but is not finished: there is nothing to match yet."""


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """What a vulnerability report is made of, read before matching; `etag` names it all (see
    `MatcherService.report_etag`), so a conditional request costs no match."""

    etag: str
    index_json: bytes  # the index report as the indexer stored it
    refs: list[tuple[str, str, str]]  # `MatcherService.latest_refs()`, read before matching


class ReportCache:
    """Serialized vulnerability reports by ETag, bounded in bytes, least recently used out.

    An ETag names the report's whole input (see `MatcherService.report_etag`), so an entry
    never goes stale: a new update operation or index report yields a new tag, and old tags
    simply age out. Each entry holds the JSON and the compressed variants asked for.
    """

    def __init__(self, max_bytes: int = DEFAULT_REPORT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: BoundedCache[str, EncodedBody] = BoundedCache(
            max_bytes, lambda body: body.size
        )

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._entries.total

    def body(self, etag: str) -> EncodedBody | None:
        return self._entries.get(etag)

    def keep(self, etag: str, body: bytes) -> EncodedBody:
        """`body` held under `etag` (it is not when too big); its variants are counted as the
        response layer makes them."""
        held = EncodedBody(body, partial(self._entries.recost, etag))
        if len(body) <= self.max_bytes // 8:  # one huge report must not flush all the others
            self._entries.put(etag, held)
        return held

    def get(self, etag: str, encoding: str = "") -> bytes | None:
        held = self._entries.get(etag)
        if held is None:
            return None
        return held.variant(encoding) if encoding else held.identity

    def put(self, etag: str, body: bytes, encoding: str = "") -> None:
        """Keeps `body`; a compressed variant only next to its JSON."""
        if not encoding:
            self.keep(etag, body)
            return
        held = self._entries.peek(etag)
        if held is not None and len(body) <= self.max_bytes // 8:
            held.set_variant(encoding, body)


def _report_doc(report: VulnerabilityReport, index_doc: dict[str, Any] | None) -> dict[str, Any]:
    """`report.to_json()`, reusing the index report's JSON when it is already at hand."""
    if index_doc is None:
        return report.to_json()
    # VulnerabilityReport.to_json copies the index report's members under their own names:
    # encode the rest around an empty index, then put the real members in their places.
    empty = IndexReport(manifest_hash=report.index.manifest_hash)
    doc = replace(report, index=empty).to_json()
    for key in doc.keys() & index_doc.keys():
        doc[key] = index_doc[key]
    return doc


class MatcherService:
    def __init__(
        self,
        store: MatcherStore,
        matchers: Sequence[Matcher] | None = None,
        enrichers: Sequence[Enricher] | None = None,
        *,
        indexer: Indexer | None = None,
        cache_age: int = 0,
        report_cache_bytes: int = DEFAULT_REPORT_CACHE_BYTES,
        candidate_cache_rows: int = DEFAULT_CANDIDATE_CACHE_ROWS,
    ) -> None:
        self.store = store
        # Where index reports come from: the indexer service itself in combo mode, its client
        # otherwise. None only where no report is asked for (tests, tools).
        self.indexer = indexer
        self.cache_age = cache_age  # seconds clients may keep a report (matcher.cache_age)
        # 0 disables it (matcher.report_cache_bytes): every report is matched.
        self.report_cache = ReportCache(report_cache_bytes) if report_cache_bytes > 0 else None
        # 0 disables it (matcher.candidate_cache_rows): every key is queried.
        self.candidate_cache = (
            CandidateCache(candidate_cache_rows) if candidate_cache_rows > 0 else None
        )
        self._initialized = False
        self._latest = store.held_latest_refs()
        # None: every matcher, as Clair does when `matchers.names` is unset.
        self.matchers: Sequence[Matcher] = (
            default_matchers() if matchers is None else list(matchers)
        )
        # None: Clair's enrichers (CVSS); `matcher.disable_enrichment` passes none.
        self.enrichers: Sequence[Enricher] = (
            default_enrichers() if enrichers is None else list(enrichers)
        )

    async def start(self) -> None:
        await self._latest.start()

    async def close(self) -> None:
        await self._latest.close()

    async def initialized(self) -> bool:
        # Once there is vulnerability data, there stays some: ask until then only.
        if not self._initialized:
            self._initialized = await self.store.initialized()
        return self._initialized

    @traced("match report")
    async def scan(
        self, report: IndexReport, refs: Sequence[tuple[str, str, str]] | None = None
    ) -> VulnerabilityReport:
        """Match the report; raises MatchError (HTTP 500) where Clair fails the report.

        `refs` (`latest_refs()`, if the caller has them) spare the lookups of enrichers whose
        updater has stored nothing yet.
        """
        out = await match_report(self.store, report, self.matchers, self.candidate_cache)
        enrichers = self.enrichers
        if refs is not None:
            stored = {updater for kind, updater, _ in refs if kind == KIND_ENRICHMENT}
            enrichers = [e for e in enrichers if e.name in stored]
        if enrichers:
            out.enrichments = await enrich_report(self.store, out, enrichers)
        return out

    async def report_inputs(self, digest: str) -> ReportInputs | None:
        """The inputs of the manifest's vulnerability report and their tag; None when the
        indexer holds no report for it."""
        if self.indexer is None:
            raise RuntimeError("matcher: no indexer to read index reports from")
        # The update refs are read before matching: see `report_etag`.
        index_json, index_state, refs = await asyncio.gather(
            self.indexer.index_report_json(digest), self.indexer.state(), self.latest_refs()
        )
        if index_json is None:
            return None
        return ReportInputs(
            self.report_etag(digest, index_state, refs, index_json), index_json, refs
        )

    async def report_body(self, inputs: ReportInputs) -> EncodedBody:
        """The serialized vulnerability report, matched only if not cached; raises
        ReportNotFinished for an index report that is not (or not yet) finished. Polling
        clients ask for the same report again and again: a cached one is compressed once.

        The body is cached only if the refs it was matched against were still the newest once
        matching finished, so a report matched against newer data (which the next request
        corrects) never stays in the cache under the older tag, where a deleted operation could
        make it current again.
        """
        etag, refs = inputs.etag, inputs.refs
        cache = self.report_cache
        held = cache.body(etag) if cache is not None else None
        if held is not None:
            return held
        index_doc = orjson.loads(inputs.index_json)
        if index_doc.get("state") != IndexState.FINISHED:
            raise ReportNotFinished(index_doc.get("manifest_hash", ""))
        report = IndexReport.from_json(index_doc)
        body = orjson.dumps(_report_doc(await self.scan(report, refs), index_doc))
        if cache is not None and refs == await self.latest_refs():
            return cache.keep(etag, body)
        return EncodedBody(body)

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

    def update_diff_batches(
        self, prev: str | None, cur: str, size: int
    ) -> AsyncIterator[tuple[str, list[Vulnerability]]]:
        return self.store.update_diff_batches(
            uuid.UUID(prev) if prev else None, uuid.UUID(cur), size
        )

    async def delete_update_operations(self, refs: Sequence[str]) -> int:
        deleted = await self.store.delete_update_operations([uuid.UUID(r) for r in refs])
        self.refs_changed()
        return deleted

    def refs_changed(self) -> None:
        """An update operation of this process landed or went: reports read the refs anew."""
        self._latest.changed()

    async def latest_refs(self) -> list[tuple[str, str, str]]:
        """(kind, updater, ref) of each updater's newest operation: what `scan` matches against."""
        return await self._latest.get()

    def report_etag(
        self,
        digest: str,
        index_state: str,
        refs: Sequence[tuple[str, str, str]],
        index_json: bytes,
    ) -> str:
        """The vulnerability report's validator, known before matching (so 304s cost no match).

        A report is a function of the index report (its stored JSON, produced under the
        indexer's scanner state), the vulnerabilities and enrichments of each updater's newest
        operation, and the configured matchers. `refs` must be read before scanning: an update
        landing in between then yields newer content under the older tag, which the next
        request corrects, never older content under a newer tag.
        """
        h = hashlib.sha256(b"clair vulnerability report 2\n")
        h.update(f"{digest}\n{index_state}\n".encode())
        h.update(hashlib.sha256(index_json).digest())
        for kind, updater, ref in refs:
            h.update(f"{kind} {updater} {ref}\n".encode())
        for matcher in self.matchers:
            h.update(f"matcher {matcher.name}\n".encode())
        for enricher in self.enrichers:
            h.update(f"enricher {enricher.name}\n".encode())
        return f'"{h.hexdigest()[:40]}"'
