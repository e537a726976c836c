"""Per-ecosystem vulnerability rules, shared by the matcher and the indexer.

The matcher uses them to build vulnerability reports, the indexer to answer
``affected_manifest``; both must agree on what "vulnerable" means (clair-api.md 6.2, 6.3).

* :class:`IndexRecord` / :func:`index_records`: what a report is matched as.
* :class:`Matcher`: ``name``, ``filter(record)``, ``constraints`` (vuln columns that must
  equal record fields, as data for one SQL query) and ``vulnerable(record, vuln)``, which
  reads only the :data:`RULE_COLUMNS` of ``vuln`` (:func:`rule_candidate` builds just those).
* :func:`default_matchers`: the configured matchers (``matchers.names``, None = all).
"""

from __future__ import annotations

from clair_common.vulnerable.matchers import (
    MATCHER_NAMES,
    RHEL_REPOSITORY_KEY,
    Matcher,
    MatchError,
    default_matchers,
)
from clair_common.vulnerable.records import (
    RULE_COLUMNS,
    UNMATCHABLE_KIND,
    Constraint,
    IndexRecord,
    index_records,
    normalized_kind,
    rule_candidate,
    severity_sorted,
)

__all__ = [
    "MATCHER_NAMES",
    "RHEL_REPOSITORY_KEY",
    "RULE_COLUMNS",
    "UNMATCHABLE_KIND",
    "Constraint",
    "IndexRecord",
    "MatchError",
    "Matcher",
    "default_matchers",
    "index_records",
    "normalized_kind",
    "rule_candidate",
    "severity_sorted",
]
