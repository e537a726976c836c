"""claircore's indexer families (indexer/controller and datastore/postgres), as facts.

Names, help texts and labels are claircore's, typos included (`setindexedfinished_total`
beside `setindexfinished_duration_seconds`, "RegiterScanners"); the call sites in store.py
and affected.py say which claircore query each of ours stands for.
"""

from __future__ import annotations

from clair_common.query_metrics import (
    QUERY,
    QUERY_SUCCESS,
    BareCounter,
    QueryFamily,
    QueryMetrics,
    claircore_family,
)

__all__ = ["SCANNED_MANIFESTS", "STORE"]

_PREFIX = "claircore_indexer_"


def _family(name: str, spelled: str, *, success: bool = False, **names: str) -> QueryFamily:
    labels = QUERY_SUCCESS if success else QUERY
    return claircore_family(
        _PREFIX, name, spelled, total_labels=labels, duration_labels=labels, **names
    )


STORE = QueryMetrics(
    {
        "registerscanners": _family("registerscanners", "RegiterScanners"),
        "layerscanned": _family("layerscanned", "LayerScanned"),
        "setlayerscanned": _family("setlayerscanned", "SetLayerScanned"),
        "manifestscanned": _family("manifestscanned", "ManifestScanned"),
        "persistmanifest": _family("persistmanifest", "PersistManifest"),
        "setindexfinished": _family(
            "setindexfinished",
            "SetIndexFinished",
            total_name="setindexedfinished",
            duration_help="Duration of all queries issued in the {} method.",
        ),
        "setindexreport": _family("setindexreport", "SetIndexReport"),
        "indexreport": _family(
            "indexreport",
            "IndexReport",
            duration_help="The duration of all queries issued in the {} method.",
        ),
        "indexpackage": _family("indexpackage", "IndexPackage"),
        "indexdistributions": _family(
            "indexdistributions",
            "IndexDistributions",
            duration_help="The duration of all queries issued in the {} method.",
        ),
        "indexrepositories": _family("indexrepositories", "IndexRepositories"),
        "indexfiles": _family("indexfiles", "IndexFiles"),
        "indexmanifest": _family("indexmanifest", "IndexManifest"),
        "packagesbylayer": _family("packagesbylayer", "PackagesByLayer"),
        "distributionbylayer": _family(
            "distributionbylayer",
            "DistributionByLayer",
            total_help="The count of all queries issued in the DistributionsByLayer method",
        ),
        "repositoriesbylayer": _family("repositoriesbylayer", "RepositoriesByLayer"),
        "filesbylayer": _family(
            "filesbylayer",
            "FilesByLayer",
            total_help="The count of all queries issued in the {} method",
        ),
        "deletemanifests": _family(
            "deletemanifests",
            "DeleteManifests",
            duration_help="The duration of all queries issued in the {} method.",
            success=True,
        ),
        "affectedmanifests": _family(
            "affectedmanifests",
            "AffectedManifests",
            duration_help="Duration of all queries issued in the {} method.",
        ),
        "protorecord": _family(
            "protorecord",
            "protoRecord",
            duration_help="Duration of all queries issued in the {} method.",
        ),
    }
)

# indexer/controller/checkmanifest.go: one count per index request, by whether the manifest
# was already indexed by every current scanner. Named without `_total` in claircore.
SCANNED_MANIFESTS = BareCounter(
    _PREFIX + "scanned_manifests", "Total number of scanned manifests.", ("scanned_before",)
)
