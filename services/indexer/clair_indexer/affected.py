"""Which indexed manifests a set of vulnerabilities affects (internal/affected_manifest).

For each vulnerability and each matcher whose constraints it can satisfy (claircore's
``datastore/postgres/affectedmanifest.go``), the manifest index is searched for packages the
vulnerability names, by name and kind or through their source package, restricted by the
matcher's constraints; every distinct (package, distribution, repository) found is then judged
by the same ``clair_common.vulnerable`` rule the matcher applies. Work is batched: one query
finds the candidate records of a whole batch of vulnerabilities, a second one the manifests of
the records found vulnerable, so a package in ten thousand manifests is judged once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from clair_common.models import (
    AffectedManifests,
    Distribution,
    Package,
    Repository,
    Vulnerability,
)
from clair_common.vulnerable import (
    Constraint,
    IndexRecord,
    Matcher,
    default_matchers,
    severity_sorted,
)
from clair_indexer.store_metrics import STORE

if TYPE_CHECKING:
    from clair_indexer.store import IndexerStore

__all__ = ["BATCH_SIZE", "affected_manifests"]

BATCH_SIZE = 500
_EQUALITIES = tuple(c for c in Constraint if c.is_equality)


def _candidates_sql() -> str:
    columns = [c.vuln_column for c in _EQUALITIES]
    params = ", ".join(f"${n}::{'int' if n == 1 else 'text'}[]" for n in range(1, 4 + len(columns)))
    names = ", ".join(["i", "name", "kind", *columns])
    equalities = "".join(
        f"\n  AND (q.{c.vuln_column} IS NULL OR {c.index_column} = q.{c.vuln_column})"
        for c in _EQUALITIES
    )
    return f"""
WITH q AS (
  SELECT * FROM unnest({params}) AS q({names})
), hit AS (
  SELECT q.i, p.id AS package_id FROM q JOIN package p ON p.name = q.name AND p.kind = q.kind
  UNION
  SELECT q.i, a.package_id FROM q
  JOIN package s ON s.name = q.name AND s.kind = q.kind
  JOIN package_scanartifact a ON a.source_id = s.id
)
SELECT DISTINCT hit.i, mi.package_id, coalesce(mi.dist_id, 0) AS dist_id,
  coalesce(mi.repo_id, 0) AS repo_id, p.name, p.version, p.kind, p.norm_kind, p.norm_version,
  p.module, p.arch, d.did, d.name AS dist_name, d.version AS dist_version,
  d.version_code_name, d.version_id, d.arch AS dist_arch, d.cpe AS dist_cpe, d.pretty_name,
  r.name AS repo_name, r.key AS repo_key, r.uri AS repo_uri, r.cpe AS repo_cpe
FROM hit
JOIN q ON q.i = hit.i
JOIN manifest_index mi ON mi.package_id = hit.package_id
JOIN package p ON p.id = mi.package_id
LEFT JOIN dist d ON d.id = mi.dist_id
LEFT JOIN repo r ON r.id = mi.repo_id
WHERE TRUE{equalities}
"""


CANDIDATES_SQL = _candidates_sql()
# Uses manifest_index_unique (package_id, coalesce(dist_id, 0), coalesce(repo_id, 0), ...).
MANIFESTS_SQL = """
SELECT t.k, m.hash
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS t(p, d, r, k)
JOIN manifest_index mi ON mi.package_id = t.p AND coalesce(mi.dist_id, 0) = t.d
  AND coalesce(mi.repo_id, 0) = t.r
JOIN manifest m ON m.id = mi.manifest_id
"""


@dataclass(frozen=True, slots=True)
class _Query:
    vuln: Vulnerability
    matcher: Matcher
    values: tuple[str | None, ...]  # one per _EQUALITIES entry; None = unconstrained


def _query(vuln: Vulnerability, matcher: Matcher) -> _Query | None:
    """The matcher's constraints filled from the vulnerability, or None if not applicable.

    As in Clair, a constraint the vulnerability leaves empty rules the matcher out, except
    the package module, which is legitimately empty.
    """
    wanted = set(matcher.constraints)
    if Constraint.HAS_FIXED_IN_VERSION in wanted and not vuln.fixed_in_version:
        return None
    values: list[str | None] = []
    for constraint in _EQUALITIES:
        if constraint not in wanted:
            values.append(None)
            continue
        value = constraint.vuln_value(vuln)
        if not value and constraint is not Constraint.PACKAGE_MODULE:
            return None
        values.append(value)
    return _Query(vuln, matcher, tuple(values))


def _record(row: asyncpg.Record) -> IndexRecord:
    norm_kind = row["norm_kind"]
    package = Package(
        id=str(row["package_id"]),
        name=row["name"],
        version=row["version"],
        kind=row["kind"],
        module=row["module"],
        arch=row["arch"],
        normalized_version=f"{norm_kind}:{row['norm_version']}" if norm_kind else "",
    )
    dist = None
    if row["dist_id"]:
        dist = Distribution(
            id=str(row["dist_id"]),
            did=row["did"],
            name=row["dist_name"],
            version=row["dist_version"],
            version_code_name=row["version_code_name"],
            version_id=row["version_id"],
            arch=row["dist_arch"],
            cpe=row["dist_cpe"],
            pretty_name=row["pretty_name"],
        )
    repo = None
    if row["repo_id"]:
        repo = Repository(
            id=str(row["repo_id"]),
            name=row["repo_name"],
            key=row["repo_key"],
            uri=row["repo_uri"],
            cpe=row["repo_cpe"],
        )
    return IndexRecord(package, dist, repo)


def _columns(queries: Sequence[_Query]) -> list[list[object]]:
    rows = [
        (i, q.vuln.package.name, q.vuln.package.kind, *q.values)
        for i, q in enumerate(queries)
        if q.vuln.package is not None
    ]
    return [[row[col] for row in rows] for col in range(3 + len(_EQUALITIES))]


async def _affected_batch(
    conn: asyncpg.Connection, queries: Sequence[_Query]
) -> dict[str, dict[str, None]]:
    """Manifest digest → ids of the batch's vulnerabilities affecting it (ordered set)."""
    found: dict[tuple[int, int, int], dict[str, None]] = {}  # (pkg, dist, repo) → vuln ids
    with STORE.observed("affectedmanifests", "vulnerabilityToPackages"):
        candidates = await conn.fetch(CANDIDATES_SQL, *_columns(queries))
    for row in candidates:
        query = queries[row["i"]]
        record = _record(row)
        if query.matcher.filter(record) and query.matcher.vulnerable(record, query.vuln):
            triple = (row["package_id"], row["dist_id"], row["repo_id"])
            found.setdefault(triple, {})[query.vuln.id] = None
    if not found:
        return {}
    triples = list(found)
    out: dict[str, dict[str, None]] = {}
    with STORE.observed("affectedmanifests", "selectAffected"):
        rows = await conn.fetch(
            MANIFESTS_SQL,
            [t[0] for t in triples],
            [t[1] for t in triples],
            [t[2] for t in triples],
        )
    for row in rows:
        out.setdefault(row["hash"], {}).update(found[triples[row["k"] - 1]])
    return out


async def affected_manifests(
    store: IndexerStore,
    vulns: Sequence[Vulnerability],
    matchers: Sequence[Matcher] | None = None,
    *,
    batch_size: int = BATCH_SIZE,
) -> AffectedManifests:
    """Every vulnerability given, and per affected manifest the ids affecting it.

    Lists are sorted by normalized severity, most severe first. Clair consults every
    registered matcher here regardless of ``matchers.names``; so does None. A rule error
    (MatchError) fails the whole request, as in Clair.
    """
    matchers = default_matchers() if matchers is None else matchers
    result = AffectedManifests(vulnerabilities={v.id: v for v in vulns})
    queries = [
        q
        for v in vulns
        if v.package is not None and v.package.name
        for q in (_query(v, m) for m in matchers)
        if q is not None
    ]
    manifests: dict[str, dict[str, None]] = {}
    async with store.pool.acquire() as conn:
        for start in range(0, len(queries), batch_size):
            batch = await _affected_batch(conn, queries[start : start + batch_size])
            for digest, ids in batch.items():
                manifests.setdefault(digest, {}).update(ids)
    result.vulnerable_manifests = {
        digest: severity_sorted(list(ids), result.vulnerabilities)
        for digest, ids in manifests.items()
    }
    return result
