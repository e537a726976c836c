"""Enrichments of a finished vulnerability report (clair-api.md 6.4): the read side.

Each enricher gets a lookup bound to the pool; the CVSS enricher asks once per report for
every tag it wants. Only records linked to the newest enrichment operation of the enricher's
updater count. An enricher that fails is logged and left out: the report is still answered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg

from clair_common.models import VulnerabilityReport
from clair_common.telemetry import traced
from clair_matcher.enrichers.base import Enricher, EnrichmentLookup, EnrichmentRecord

log = logging.getLogger("clair.matcher.enrichment")

# The GIN index on tags finds the candidates; the link table's primary key (uo, enrich)
# keeps those of the newest operation.
ENRICHMENTS_SQL = """
SELECT e.tags, e.data
FROM enrichment e
WHERE e.tags && $2::text[]
  AND e.updater = $1
  AND EXISTS (
    SELECT 1 FROM uo_enrich ue
    WHERE ue.enrich = e.id AND ue.uo = (
      SELECT uo_id FROM latest_update_operation WHERE updater = $1 AND kind = 'enrichment'
    )
  )
ORDER BY e.tags, e.id
"""


def enrichment_lookup(pool: asyncpg.Pool) -> EnrichmentLookup:
    async def lookup(updater: str, tags: Sequence[str]) -> list[EnrichmentRecord]:
        if not tags:
            return []
        rows = await pool.fetch(ENRICHMENTS_SQL, updater, list(tags))
        return [EnrichmentRecord(list(r["tags"]), r["data"]) for r in rows]

    return lookup


@traced("enrich report")
async def enrich_report(
    pool: asyncpg.Pool, report: VulnerabilityReport, enrichers: Sequence[Enricher]
) -> dict[str, list[Any]]:
    """The report's `enrichments` map: media type → values; `{}` when no enricher adds any."""
    out: dict[str, list[Any]] = {}
    if not report.vulnerabilities:
        return out
    lookup = enrichment_lookup(pool)
    for enricher in enrichers:
        try:
            values = await enricher.enrich(lookup, report)
        except Exception as exc:  # enrichment is best effort, as in Clair
            log.error("enricher %s failed: %s", enricher.name, " ".join(str(exc).split()))
            continue
        if values:
            out[enricher.media_type] = values
    return out
