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

from clair_common.models import (
    AffectedManifests,
    Vulnerability,
)
from clair_common.vulnerable import (
    Constraint,
    Matcher,
    default_matchers,
    severity_sorted,
)
from clair_indexer.store import AFFECTED_EQUALITIES, AffectedReads, IndexerStore

__all__ = ["BATCH_SIZE", "affected_manifests"]

BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class _Query:
    vuln: Vulnerability
    matcher: Matcher
    values: tuple[str | None, ...]  # one per AFFECTED_EQUALITIES entry; None = unconstrained


def _query(vuln: Vulnerability, matcher: Matcher) -> _Query | None:
    """The matcher's constraints filled from the vulnerability, or None if not applicable.

    As in Clair, a constraint the vulnerability leaves empty rules the matcher out, except
    the package module, which is legitimately empty.
    """
    wanted = set(matcher.constraints)
    if Constraint.HAS_FIXED_IN_VERSION in wanted and not vuln.fixed_in_version:
        return None
    values: list[str | None] = []
    for constraint in AFFECTED_EQUALITIES:
        if constraint not in wanted:
            values.append(None)
            continue
        value = constraint.vuln_value(vuln)
        if not value and constraint is not Constraint.PACKAGE_MODULE:
            return None
        values.append(value)
    return _Query(vuln, matcher, tuple(values))


def _columns(queries: Sequence[_Query]) -> list[list[object]]:
    rows = [
        (i, q.vuln.package.name, q.vuln.package.kind, *q.values)
        for i, q in enumerate(queries)
        if q.vuln.package is not None
    ]
    return [[row[col] for row in rows] for col in range(3 + len(AFFECTED_EQUALITIES))]


async def _affected_batch(
    reads: AffectedReads, queries: Sequence[_Query]
) -> dict[str, dict[str, None]]:
    """Manifest digest → ids of the batch's vulnerabilities affecting it (ordered set)."""
    found: dict[tuple[int, int, int], dict[str, None]] = {}  # (pkg, dist, repo) → vuln ids
    for i, triple, record in await reads.candidates(_columns(queries)):
        query = queries[i]
        if query.matcher.filter(record) and query.matcher.vulnerable(record, query.vuln):
            found.setdefault(triple, {})[query.vuln.id] = None
    if not found:
        return {}
    triples = list(found)
    out: dict[str, dict[str, None]] = {}
    for k, digest in await reads.manifests(triples):
        out.setdefault(digest, {}).update(found[triples[k]])
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
    async with store.affected_reads() as reads:
        for start in range(0, len(queries), batch_size):
            batch = await _affected_batch(reads, queries[start : start + batch_size])
            for digest, ids in batch.items():
                manifests.setdefault(digest, {}).update(ids)
    result.vulnerable_manifests = {
        digest: severity_sorted(list(ids), result.vulnerabilities)
        for digest, ids in manifests.items()
    }
    return result
