"""Enrichment records at match time: those of an enricher's newest operation, by tag."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from clair_matcher.store._metrics import VULNSTORE

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


async def enrichment_records(
    pool: asyncpg.Pool, updater: str, tags: Sequence[str]
) -> list[tuple[list[str], Any]]:
    """(tags, data) of the records of `updater`'s newest enrichment operation sharing a tag
    with `tags`."""
    if not tags:
        return []
    with VULNSTORE.observed("getenrichments"):
        rows = await pool.fetch(ENRICHMENTS_SQL, updater, list(tags))
    return [(list(r["tags"]), r["data"]) for r in rows]
