"""Enrichments of a finished vulnerability report (clair-api.md 6.4): the read side.

Each enricher gets the store's lookup; the CVSS enricher asks once per report for every tag it
wants. Only records linked to the newest enrichment operation of the enricher's updater count.
An enricher that fails is logged and left out: the report is still answered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from clair_common.models import VulnerabilityReport
from clair_common.telemetry import traced
from clair_matcher.enrichers.base import Enricher, EnrichmentLookup, EnrichmentRecord
from clair_matcher.store import MatcherStore

log = logging.getLogger("clair.matcher.enrichment")


def _lookup(store: MatcherStore) -> EnrichmentLookup:
    async def lookup(updater: str, tags: Sequence[str]) -> list[EnrichmentRecord]:
        return [EnrichmentRecord(*r) for r in await store.enrichment_records(updater, tags)]

    return lookup


@traced("enrich report")
async def enrich_report(
    store: MatcherStore, report: VulnerabilityReport, enrichers: Sequence[Enricher]
) -> dict[str, list[Any]]:
    """The report's `enrichments` map: media type → values; `{}` when no enricher adds any."""
    out: dict[str, list[Any]] = {}
    if not report.vulnerabilities:
        return out
    lookup = _lookup(store)
    for enricher in enrichers:
        try:
            values = await enricher.enrich(lookup, report)
        except Exception as exc:  # enrichment is best effort, as in Clair
            log.error("enricher %s failed: %s", enricher.name, " ".join(str(exc).split()))
            continue
        if values:
            out[enricher.media_type] = values
    return out
