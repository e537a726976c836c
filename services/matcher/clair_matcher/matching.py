"""Vulnerability reports: index records → candidate vulnerabilities → each matcher's rule.

Clair sends one query per record; we send one per *shape* (a matcher's set of constraints;
matchers sharing one share the query). Every interested (matcher, record) becomes a row of an
``unnest``-ed parameter table holding the package name and kind (plus a second row for the
source package) and the record's value of each constrained column; identical rows are sent
once. Candidates are fetched as just the columns the shape's rules read (their matchers'
``rule_columns``), and one partial vulnerability is built per distinct set of those values,
so thousands of candidate rows cost a few hundred small objects.

As in claircore (internal/matcher/match.go), a matcher's candidates are pooled per package
and every record of that package is checked against all of them. Only vulnerabilities linked
to the newest vulnerability operation of their updater count; that link is checked for the
few that match (with their full rows, in the same snapshot) rather than for every candidate.
A rule error on a vulnerability that turns out not to be linked is therefore ignored, as it
was never a candidate in Clair either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from clair_common.models import IndexReport, Vulnerability, VulnerabilityReport
from clair_common.vulnerable import (
    RULE_COLUMNS,
    UNMATCHABLE_KIND,
    Constraint,
    IndexRecord,
    Matcher,
    MatchError,
    index_records,
    normalized_kind,
    rule_candidate,
    severity_sorted,
)
from clair_matcher.candidates import CandidateCache
from clair_matcher.store import MatcherStore, MatchSnapshot

__all__ = ["MatchError", "match_report"]

# (package name, kind, source name, source kind, one value per constrained column)
_Key = tuple[str, ...]
_Owner = tuple[int, str]  # (matcher index, package id)
_RuleValues = tuple[str, ...]  # the values of a shape's selected rule columns


@dataclass(slots=True)
class _ShapeQuery:
    """The parameter rows of one shape, which keys each (matcher, package) owns, and, once
    fetched, the candidates of each key."""

    constraints: tuple[Constraint, ...]
    need_fixed: bool
    rule_columns: set[str] = field(default_factory=set)  # what the shape's matchers read
    keys: dict[_Key, int] = field(default_factory=dict)
    owned: dict[_Owner, list[int]] = field(default_factory=dict)
    found: list[dict[int, Vulnerability]] = field(default_factory=list)

    def add(self, owner: _Owner, record: IndexRecord) -> None:
        pkg, src = record.package, record.package.source
        key = (
            pkg.name,
            pkg.kind,
            src.name if src is not None else "",
            src.kind if src is not None else "",
            *(c.record_value(record) for c in self.constraints),
        )
        i = self.keys.setdefault(key, len(self.keys))
        owned = self.owned.setdefault(owner, [])
        if i not in owned:
            owned.append(i)

    def parameters(self, wanted: Sequence[tuple[int, _Key]]) -> list[list[object]]:
        """Columns of the q table: one row per wanted (index, key) and package name (binary,
        then source)."""
        width = len(self.constraints)
        index: list[object] = []
        names: list[object] = []
        kinds: list[object] = []
        values: list[list[object]] = [[] for _ in range(width)]
        for i, key in wanted:
            for name, kind in ((key[0], key[1]), (key[2], key[3])):
                if not name:
                    continue
                index.append(i)
                names.append(name)
                kinds.append(kind)
                for col in range(width):
                    values[col].append(key[4 + col])
        return [index, names, kinds, *values]

    async def fetch(self, snapshot: MatchSnapshot, cache: CandidateCache | None) -> None:
        """Candidates of every key, from `cache` or the database (then kept in `cache`); one
        partial vulnerability per distinct rule values."""
        columns = tuple(c.vuln_column for c in self.constraints)
        selected = tuple(c for c in RULE_COLUMNS if c in self.rule_columns)
        signature = (columns, self.need_fixed, selected)
        found: list[dict[int, Vulnerability]] = [{} for _ in self.keys]
        missing: list[tuple[int, _Key]] = []
        for i, key in enumerate(self.keys):
            cached = cache.get((signature, key)) if cache is not None else None
            if cached is None:
                missing.append((i, key))
            else:
                found[i] = cached
        self.found = found
        if not missing:
            return
        rows = await snapshot.candidates(
            columns, self.need_fixed, selected, self.parameters(missing)
        )
        # Where each RULE_COLUMNS value sits in a row (2, 3, ...); None: not read, left "".
        places = [2 + selected.index(c) if c in selected else None for c in RULE_COLUMNS]
        built: dict[_RuleValues, Vulnerability] = {}
        for row in rows:
            values: _RuleValues = row[2:]  # a Record's slice is a tuple
            vuln = built.get(values)
            if vuln is None:
                vuln = built[values] = rule_candidate(
                    *("" if p is None else row[p] for p in places)
                )
            found[row[0]][row[1]] = vuln
        if cache is not None:
            for i, key in missing:
                cache.put((signature, key), found[i])

    def candidates(self, owner: _Owner) -> dict[int, Vulnerability]:
        """The pooled candidates of a (matcher, package): those of every key it owns."""
        owned = self.owned.get(owner)
        if not owned:
            return {}
        if len(owned) == 1:
            return self.found[owned[0]]
        pooled: dict[int, Vulnerability] = {}
        for i in owned:
            pooled.update(self.found[i])
        return pooled


def _shape(matcher: Matcher) -> tuple[tuple[Constraint, ...], bool]:
    equalities = tuple(c for c in Constraint if c.is_equality and c in matcher.constraints)
    return equalities, Constraint.HAS_FIXED_IN_VERSION in matcher.constraints


async def match_report(
    store: MatcherStore,
    report: IndexReport,
    matchers: Sequence[Matcher],
    cache: CandidateCache | None = None,
) -> VulnerabilityReport:
    """The report's vulnerabilities; raises MatchError where Clair fails the report.

    With `cache`, candidates of keys asked before under the same update operations (as this
    report's snapshot sees them) are not queried again.
    """
    matchable = [
        r
        for r in index_records(report)
        if r.package.name and normalized_kind(r.package) != UNMATCHABLE_KIND
    ]
    per_matcher = [[r for r in matchable if m.filter(r)] for m in matchers]
    shapes: dict[tuple[tuple[Constraint, ...], bool], _ShapeQuery] = {}
    queries: list[_ShapeQuery | None] = []  # each matcher's, None if it wants no record
    for mi, (matcher, interested) in enumerate(zip(matchers, per_matcher, strict=True)):
        if not interested:
            queries.append(None)
            continue
        shape = _shape(matcher)
        query = shapes.get(shape)
        if query is None:
            query = shapes[shape] = _ShapeQuery(*shape)
        queries.append(query)
        query.rule_columns.update(matcher.rule_columns)
        for record in interested:
            query.add((mi, record.package.id), record)
    out = VulnerabilityReport(index=report)
    if not shapes:
        return out

    async with store.match_snapshot() as snapshot:
        if cache is not None:
            # The generation this snapshot sees: cached candidates must come from the same.
            cache.use(await snapshot.latest_refs())
        for query in shapes.values():
            await query.fetch(snapshot, cache)

        matched: dict[str, dict[int, None]] = {}  # package id → ordered set of vuln ids
        failures: list[tuple[int, MatchError]] = []  # raised only if the vuln is current
        for mi, (matcher, interested, shape_query) in enumerate(
            zip(matchers, per_matcher, queries, strict=True)
        ):
            if shape_query is None:
                continue
            vulnerable = matcher.vulnerable
            for record in interested:
                pkg_id = record.package.id
                candidates = shape_query.candidates((mi, pkg_id))
                for vuln_id, vuln in candidates.items():
                    try:
                        affected = vulnerable(record, vuln)
                    except MatchError as err:
                        failures.append((vuln_id, err))
                        continue
                    if affected:
                        matched.setdefault(pkg_id, {})[vuln_id] = None
        wanted = {v for found in matched.values() for v in found}
        wanted.update(v for v, _ in failures)
        if not wanted:
            return out
        current = await snapshot.current(sorted(wanted))  # those of the newest operations

    for vuln_id, failure in failures:
        if vuln_id in current:
            raise failure
    affected_ids = {v for found in matched.values() for v in found}
    out.vulnerabilities = {str(v): current[v] for v in sorted(current) if v in affected_ids}
    for pkg_id, found in matched.items():
        present = [str(v) for v in found if v in current]
        if present:
            out.package_vulnerabilities[pkg_id] = severity_sorted(present, out.vulnerabilities)
    return out
