"""The matcher's API: which handler answers each route, and what the OpenAPI document says of it
(the handlers are in `clair_matcher.handlers`)."""

from __future__ import annotations

from clair_common.http.routes import Operation, Reply, ServiceOperation, bind
from clair_matcher.handlers import (
    PREFIX,
    REPORT_TYPE,
    delete_update_operation,
    get_update_diff,
    get_update_operations,
    get_vulnerability_report,
)
from clair_matcher.service import MatcherService

OPERATIONS: tuple[ServiceOperation[MatcherService], ...] = (
    ServiceOperation(
        "GET",
        f"{PREFIX}/vulnerability_report/{{digest}}",
        get_vulnerability_report,
        "GetVulnerabilityReport",
        "Retrieve a VulnerabilityReport for a manifest",
        "matcher",
        responses={
            200: Reply(
                "VulnerabilityReport",
                "VulnerabilityReport",
                REPORT_TYPE,
                ("ETag", "Cache-Control"),
            ),
            202: Reply("The vulnerability database is not initialized yet"),
            304: Reply("Not modified"),
            400: Reply("Malformed digest", "Error"),
            404: Reply("No finished index report for the manifest", "Error"),
        },
    ),
    ServiceOperation(
        "GET",
        f"{PREFIX}/internal/update_operation",
        get_update_operations,
        "GetUpdateOperations",
        "Update operations, newest first, per updater",
        "internal",
        responses={
            200: Reply("Update operations", "UpdateOperations", headers=("ETag",)),
            304: Reply("Not modified"),
        },
        query=(("kind", "string", False), ("latest", "boolean", False)),
    ),
    ServiceOperation(
        "DELETE",
        f"{PREFIX}/internal/update_operation/{{ref}}",
        delete_update_operation,
        "DeleteUpdateOperation",
        "Delete an update operation",
        "internal",
        responses={200: Reply("Deleted"), 400: Reply("Bad uuid", "Error")},
    ),
    ServiceOperation(
        "GET",
        f"{PREFIX}/internal/update_diff",
        get_update_diff,
        "GetUpdateDiff",
        "Vulnerabilities added and removed between two operations",
        "internal",
        responses={200: Reply("Update diff", "UpdateDiff"), 400: Reply("Bad uuid", "Error")},
        query=(("cur", "string", True), ("prev", "string", False)),
    ),
)


def build_operations(service: MatcherService) -> list[Operation]:
    return bind(OPERATIONS, service)
