"""claircore's vulnstore families (datastore/postgres/*.go of the matcher store), as facts.

Names, help texts and labels are claircore's; the call sites say which claircore query each
of ours stands for. Update-operation queries are labelled by kind as claircore's are
(`query_vulnerability`, `query_enrichment`).
"""

from __future__ import annotations

import functools

from clair_common.query_metrics import QUERY_SUCCESS, QueryMetrics, claircore_family

__all__ = ["VULNSTORE", "kind_query"]

_PREFIX = "claircore_vulnstore_"


_family = functools.partial(claircore_family, _PREFIX)

_DELTA = ("query", "is_delta")

VULNSTORE = QueryMetrics(
    {
        "getvulnerabilities": _family("getvulnerabilities", "get"),
        "getlatestupdateref": _family("getlatestupdateref", "GetLatestUpdateRef"),
        "getlatestrefs": _family("getlatestrefs", "getLatestRefs"),
        "getupdateoperations": _family("getupdateoperations", "getUpdateOperations"),
        "getupdatediff": _family("getupdatediff", "GetUpdateDiff"),
        "populaterefs": _family("populaterefs", "populateRefs"),
        "updatevulnerabilities": _family(
            "updatevulnerabilities",
            "UpdateVulnerabilities",
            total_labels=_DELTA,
            duration_labels=_DELTA,
        ),
        "updateenrichments": _family(
            "updateenrichments",
            "UpdateEnrichments",
            duration_help="Duration of all queries issued in the {} method.",
        ),
        "getenrichments": _family(
            "getenrichments",
            "get",
            duration_help="Duration of all queries issued in the {} method.",
            total_labels=QUERY_SUCCESS,
            duration_labels=QUERY_SUCCESS,
        ),
        "gc": _family("gc", "GC", total_labels=QUERY_SUCCESS),
    }
)


def kind_query(kind: str) -> str:
    """claircore's query label for an update-operation query restricted to `kind`."""
    return f"query_{kind}" if kind else "query"
