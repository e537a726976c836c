"""Vulnerability reports: index records → candidate vulnerabilities → each matcher's rule.

Clair sends one query per record; we send one for the whole report. Every (matcher, record)
becomes a row of an ``unnest``-ed parameter table holding the package name and kind (plus a
second row for the source package) and the value of each of the matcher's constraints, NULL
where the matcher does not constrain that column. Identical rows are sent once. The query
keeps only vulnerabilities linked to the newest vulnerability operation of their updater.

As in claircore (internal/matcher/match.go), a matcher's candidates are pooled per package
and every record of that package is checked against all of them. Candidates are fetched
without their long text columns; full rows are read only for the vulnerabilities that match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from clair_common.models import (
    IndexReport,
    Package,
    Repository,
    Vulnerability,
    VulnerabilityReport,
)
from clair_common.vulnerable import (
    UNMATCHABLE_KIND,
    Constraint,
    IndexRecord,
    Matcher,
    MatchError,
    index_records,
    normalized_kind,
    severity_sorted,
)
from clair_matcher.store import VULN_COLUMNS, vuln_from_row

__all__ = ["CANDIDATES_SQL", "MatchError", "match_report"]

_EQUALITIES = tuple(c for c in Constraint if c.is_equality)


def _candidates_sql() -> str:
    columns = [c.vuln_column for c in _EQUALITIES]
    params = ", ".join(
        f"${n}::{kind}[]"
        for n, kind in enumerate(["int", "text", "text", *["text"] * len(columns), "bool"], 1)
    )
    names = ", ".join(["i", "name", "kind", *columns, "need_fixed"])
    equalities = "".join(f"\n  AND (q.{c} IS NULL OR v.{c} = q.{c})" for c in columns)
    return f"""
WITH q AS (
  SELECT * FROM unnest({params}) AS q({names})
)
SELECT q.i, v.id, v.normalized_severity, v.package_name, v.package_version, v.package_kind,
  v.package_module, v.package_arch, v.repo_name, v.repo_key, v.repo_uri, v.fixed_in_version,
  v.arch_operation
FROM q
JOIN vuln v ON v.package_name = q.name AND v.package_kind = q.kind
WHERE (NOT q.need_fixed OR v.fixed_in_version <> ''){equalities}
  AND EXISTS (
    SELECT 1 FROM uo_vuln uv WHERE uv.vuln = v.id AND uv.uo = ANY(
      (SELECT array_agg(uo_id) FROM latest_update_operation WHERE kind = 'vulnerability')::bigint[]
    )
  )
"""


CANDIDATES_SQL = _candidates_sql()
_DETAILS_SQL = f"SELECT {VULN_COLUMNS} FROM vuln v WHERE v.id = ANY($1::bigint[])"


@dataclass(frozen=True, slots=True)
class _QueryKey:
    """Everything that decides which vulnerabilities one record's query returns."""

    name: str
    kind: str
    source_name: str
    source_kind: str
    values: tuple[str | None, ...]  # one per _EQUALITIES entry; None = unconstrained
    need_fixed: bool


def _query_key(wanted: frozenset[Constraint], record: IndexRecord) -> _QueryKey:
    pkg, src = record.package, record.package.source
    return _QueryKey(
        name=pkg.name,
        kind=pkg.kind,
        source_name=src.name if src is not None else "",
        source_kind=src.kind if src is not None else "",
        values=tuple(c.record_value(record) if c in wanted else None for c in _EQUALITIES),
        need_fixed=Constraint.HAS_FIXED_IN_VERSION in wanted,
    )


def _parameters(keys: Sequence[_QueryKey]) -> list[list[object]]:
    """Columns of the q table: one row per key and package name (binary, then source)."""
    rows: list[tuple[object, ...]] = []
    for i, key in enumerate(keys):
        rows.append((i, key.name, key.kind, *key.values, key.need_fixed))
        if key.source_name:
            rows.append((i, key.source_name, key.source_kind, *key.values, key.need_fixed))
    width = 4 + len(_EQUALITIES)
    return [[row[col] for row in rows] for col in range(width)]


def _candidate(row: asyncpg.Record) -> Vulnerability:
    """Just the fields the rules read."""
    return Vulnerability(
        id=str(row["id"]),
        normalized_severity=row["normalized_severity"],
        package=Package(
            name=row["package_name"],
            version=row["package_version"],
            kind=row["package_kind"],
            module=row["package_module"],
            arch=row["package_arch"],
        ),
        repository=Repository(name=row["repo_name"], key=row["repo_key"], uri=row["repo_uri"])
        if row["repo_name"] or row["repo_key"] or row["repo_uri"]
        else None,
        fixed_in_version=row["fixed_in_version"],
        arch_op=row["arch_operation"],
    )


def _interested(matcher: Matcher, records: Sequence[IndexRecord]) -> list[IndexRecord]:
    return [
        r
        for r in records
        if r.package.name and normalized_kind(r.package) != UNMATCHABLE_KIND and matcher.filter(r)
    ]


async def match_report(
    pool: asyncpg.Pool, report: IndexReport, matchers: Sequence[Matcher]
) -> VulnerabilityReport:
    """The report's vulnerabilities; raises MatchError where Clair fails the report."""
    records = index_records(report)
    per_matcher = [_interested(m, records) for m in matchers]
    key_index: dict[_QueryKey, int] = {}
    owners: list[set[tuple[int, str]]] = []  # key index → {(matcher index, package id)}
    for mi, (matcher, interested) in enumerate(zip(matchers, per_matcher, strict=True)):
        wanted = frozenset(matcher.constraints)
        for record in interested:
            key = _query_key(wanted, record)
            i = key_index.setdefault(key, len(key_index))
            if i == len(owners):
                owners.append(set())
            owners[i].add((mi, record.package.id))
    out = VulnerabilityReport(index=report)
    if not key_index:
        return out

    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(CANDIDATES_SQL, *_parameters(list(key_index)))
        candidates: dict[tuple[int, str], dict[str, Vulnerability]] = {}
        for row in rows:
            vuln = _candidate(row)
            for owner in owners[row["i"]]:
                candidates.setdefault(owner, {})[vuln.id] = vuln

        matched: dict[str, dict[str, None]] = {}  # package id → ordered set of vuln ids
        for mi, (matcher, interested) in enumerate(zip(matchers, per_matcher, strict=True)):
            for record in interested:
                pkg_id = record.package.id
                for vuln in candidates.get((mi, pkg_id), {}).values():
                    if matcher.vulnerable(record, vuln):
                        matched.setdefault(pkg_id, {})[vuln.id] = None
        if not matched:
            return out
        ids = sorted({int(v) for found in matched.values() for v in found})
        details = await conn.fetch(_DETAILS_SQL, ids)

    out.vulnerabilities = {str(r["id"]): vuln_from_row(r) for r in details}
    for pkg_id, found in matched.items():
        present = [v for v in found if v in out.vulnerabilities]
        if present:
            out.package_vulnerabilities[pkg_id] = severity_sorted(present, out.vulnerabilities)
    return out
