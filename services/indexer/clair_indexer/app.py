"""The indexer's API: which handler answers each route, and what the OpenAPI document says of it
(the handlers are in `clair_indexer.handlers`)."""

from __future__ import annotations

from clair_common.http.routes import Operation, Reply, ServiceOperation, bind
from clair_indexer.handlers import (
    AFFECTED_TYPE,
    INDEX_REPORT_TYPE,
    INDEX_STATE_TYPE,
    PREFIX,
    delete_index_report,
    delete_index_reports,
    get_index_report,
    get_index_state,
    post_affected_manifest,
    post_index_report,
)
from clair_indexer.service import IndexerService

OPERATIONS: tuple[ServiceOperation[IndexerService], ...] = (
    ServiceOperation(
        "POST",
        f"{PREFIX}/index_report",
        post_index_report,
        "Index",
        "Index the contents of a Manifest",
        "indexer",
        request_schema="Manifest",
        responses={
            201: Reply(
                "IndexReport created",
                "IndexReport",
                INDEX_REPORT_TYPE,
                ("ETag", "Location", "Link"),
            ),
            400: Reply("Bad request", "Error"),
            412: Reply("Precondition failed: the manifest is indexed with this state"),
            429: Reply("Too many requests", "Error"),
        },
    ),
    ServiceOperation(
        "DELETE",
        f"{PREFIX}/index_report",
        delete_index_reports,
        "DeleteManifests",
        "Delete the IndexReports of several manifests",
        "indexer",
        request_schema="BulkDelete",
        responses={200: Reply("Deleted digests", "BulkDeleteResult")},
    ),
    ServiceOperation(
        "GET",
        f"{PREFIX}/index_report/{{digest}}",
        get_index_report,
        "GetIndexReport",
        "Retrieve the IndexReport of a manifest",
        "indexer",
        responses={
            200: Reply("IndexReport", "IndexReport", INDEX_REPORT_TYPE, ("ETag",)),
            304: Reply("Not modified"),
            400: Reply("Malformed digest", "Error"),
            404: Reply("Not found", "Error"),
            415: Reply("Unsupported media type", "Error"),
        },
    ),
    ServiceOperation(
        "DELETE",
        f"{PREFIX}/index_report/{{digest}}",
        delete_index_report,
        "DeleteManifest",
        "Delete the IndexReport of a manifest",
        "indexer",
        responses={204: Reply("Deleted")},
    ),
    ServiceOperation(
        "GET",
        f"{PREFIX}/index_state",
        get_index_state,
        "IndexState",
        "Report the indexer's configuration state",
        "indexer",
        responses={
            200: Reply("Indexer state", "IndexState", INDEX_STATE_TYPE, ("ETag",)),
            304: Reply("Not modified"),
        },
    ),
    ServiceOperation(
        "POST",
        f"{PREFIX}/internal/affected_manifest/",
        post_affected_manifest,
        "AffectedManifests",
        "Manifests affected by the given vulnerabilities",
        "internal",
        request_schema="AffectedManifestsRequest",
        responses={200: Reply("Affected manifests", "AffectedManifests", AFFECTED_TYPE)},
    ),
)


def build_operations(service: IndexerService) -> list[Operation]:
    return bind(OPERATIONS, service)


# The limited paths a refusal metric may name (any other limited path is a 404 anyway).
LIMITED_ENDPOINTS = frozenset((f"{PREFIX}/index_report", f"{PREFIX}/internal/affected_manifest/"))


def limited(method: str, path: str) -> bool:
    """Clair limits every POST under the API and every call to exactly index_report."""
    return (method == "POST" and path.startswith(PREFIX + "/")) or path == f"{PREFIX}/index_report"
