"""The reads of one vulnerability report: candidates per query shape, then the matches' rows.

`clair_matcher.matching` decides what to ask and which candidates match; this module asks. A
report is read in one read-only, repeatable-read transaction, so the refs it caches candidates
under, the candidates and the rows of the matches all come from the same snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import asyncpg

from clair_common.models import Vulnerability
from clair_matcher.store._latest import Refs
from clair_matcher.store._metrics import VULNSTORE
from clair_matcher.store._operations import LATEST_REFS_SQL
from clair_matcher.store._rows import VULN_COLUMNS, vuln_from_row

# Only vulnerabilities linked to the newest vulnerability operation of their updater count.
_DETAILS_SQL = f"""
SELECT {VULN_COLUMNS}
FROM vuln v
WHERE v.id = ANY($1::bigint[])
  AND EXISTS (
    SELECT 1 FROM uo_vuln uv WHERE uv.vuln = v.id AND uv.uo = ANY(
      (SELECT array_agg(uo_id) FROM latest_update_operation WHERE kind = 'vulnerability')::bigint[]
    )
  )
"""


@lru_cache(maxsize=64)
def candidates_sql(columns: tuple[str, ...], need_fixed: bool, selected: tuple[str, ...]) -> str:
    """The candidate query of one shape: equalities on `columns` besides name and kind; the
    rule columns `selected` follow the parameter row index and the vulnerability id."""
    params = ", ".join(f"${n}::{'int' if n == 1 else 'text'}[]" for n in range(1, len(columns) + 4))
    names = ", ".join(["i", "name", "kind", *columns])
    conditions = [f"v.{c} = q.{c}" for c in columns]
    if need_fixed:
        conditions.append("v.fixed_in_version <> ''")
    where = "\nWHERE " + "\n  AND ".join(conditions) if conditions else ""
    return f"""
SELECT q.i, v.id{"".join(f", v.{c}" for c in selected)}
FROM unnest({params}) AS q({names})
JOIN vuln v ON v.package_name = q.name AND v.package_kind = q.kind{where}
"""


class MatchSnapshot:
    """The reads of one report, on the connection of its transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def latest_refs(self) -> Refs:
        """(kind, updater, ref) of every updater's newest operation, as this snapshot sees it."""
        with VULNSTORE.observed("getlatestrefs"):
            rows = await self._conn.fetch(LATEST_REFS_SQL)
        return [(r[0], r[1], str(r[2])) for r in rows]

    async def candidates(
        self,
        columns: tuple[str, ...],
        need_fixed: bool,
        selected: tuple[str, ...],
        parameters: Sequence[Sequence[object]],
    ) -> list[asyncpg.Record]:
        """Rows (parameter row index, vulnerability id, *`selected` columns) of every vulnerability
        of the parameter rows' packages that meets the shape (see `candidates_sql`).

        `parameters` are the columns of the parameter table: indexes, package names, kinds,
        then one column per entry of `columns`."""
        # claircore's Get is one batch of queries; ours are the shapes' and the details'.
        with VULNSTORE.observed("getvulnerabilities", "query_batch"):
            return list(
                await self._conn.fetch(candidates_sql(columns, need_fixed, selected), *parameters)
            )

    async def current(self, ids: Sequence[int]) -> dict[int, Vulnerability]:
        """Those of `ids` linked to their updater's newest operation, in full."""
        with VULNSTORE.observed("getvulnerabilities", "query_batch"):
            rows = await self._conn.fetch(_DETAILS_SQL, ids)
        return {r["id"]: vuln_from_row(r) for r in rows}
