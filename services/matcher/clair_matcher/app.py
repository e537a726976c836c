"""The matcher's HTTP routes (clair-api.md 1.4): parse, call the service, encode."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from clair_common.clients import Indexer
from clair_common.http.errors import APIError, bad_request, not_found
from clair_common.http.negotiate import if_none_match
from clair_common.http.routes import Operation, Reply
from clair_common.models import IndexState, UpdateOperation, is_digest
from clair_matcher.service import MatcherService

PREFIX = "/matcher/api/v1"
REPORT_TYPE = "application/vnd.clair.vulnerability_report.v1+json"


def _json(doc: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), media_type="application/json", headers=headers)


def _uuid(value: str | None, name: str) -> str:
    try:
        return str(uuid.UUID(value or ""))
    except ValueError as err:
        raise bad_request(f"{name}: invalid uuid {value!r}") from err


def _operations_json(ops: dict[str, list[UpdateOperation]]) -> dict[str, Any]:
    return {name: [op.to_json() for op in items] for name, items in ops.items()}


def build_operations(service: MatcherService, indexer: Indexer, cache_age: int) -> list[Operation]:
    async def vulnerability_report(request: Request) -> Response:
        digest = str(request.path_params["digest"])
        if not is_digest(digest):
            raise bad_request("malformed path")
        if not await service.initialized():
            return Response(status_code=202)
        report = await indexer.index_report(digest)
        if report is None or report.state != IndexState.FINISHED:
            raise not_found(f'index report for manifest "{digest}" not found')
        try:
            vr = await service.scan(report)
        except Exception as err:
            raise APIError(500, f"failed to start scan: {err}") from err
        return Response(
            orjson.dumps(vr.to_json()),
            media_type=REPORT_TYPE,
            headers={"Cache-Control": f"max-age={cache_age}"},
        )

    async def update_operation(request: Request) -> Response:
        kind = request.query_params.get("kind", "vulnerability") or "vulnerability"
        if kind not in ("vulnerability", "enrichment"):
            raise bad_request(f"unknown kind {kind!r}")
        latest = request.query_params.get("latest", "").lower() in ("1", "t", "true")
        ref = await service.latest_ref(kind)
        headers = {}
        if ref is not None:
            etag = f'"{ref}"'
            if if_none_match(request, etag):
                return Response(status_code=304, headers={"ETag": etag})
            headers["ETag"] = etag
        ops = await service.update_operations(kind, latest=latest)
        return _json(_operations_json(ops), headers)

    async def delete_update_operation(request: Request) -> Response:
        ref = _uuid(request.path_params["ref"], "ref")
        await service.delete_update_operations([ref])
        return Response(status_code=200)

    async def update_diff(request: Request) -> Response:
        cur = _uuid(request.query_params.get("cur"), "cur")
        raw_prev = request.query_params.get("prev")
        prev = _uuid(raw_prev, "prev") if raw_prev else None
        try:
            diff = await service.update_diff(prev, cur)
        except LookupError as err:
            raise APIError(500, str(err)) from err
        return _json(diff.to_json())

    return [
        Operation(
            "GET",
            f"{PREFIX}/vulnerability_report/{{digest}}",
            vulnerability_report,
            "GetVulnerabilityReport",
            "Retrieve a VulnerabilityReport for a manifest",
            "matcher",
            responses={
                200: Reply("VulnerabilityReport", "VulnerabilityReport", REPORT_TYPE),
                202: Reply("The vulnerability database is not initialized yet"),
                400: Reply("Malformed digest", "Error"),
                404: Reply("No finished index report for the manifest", "Error"),
            },
        ),
        Operation(
            "GET",
            f"{PREFIX}/internal/update_operation",
            update_operation,
            "GetUpdateOperations",
            "Update operations, newest first, per updater",
            "internal",
            responses={
                200: Reply("Update operations", "UpdateOperations", headers=("ETag",)),
                304: Reply("Not modified"),
            },
            query=(("kind", "string", False), ("latest", "boolean", False)),
        ),
        Operation(
            "DELETE",
            f"{PREFIX}/internal/update_operation/{{ref}}",
            delete_update_operation,
            "DeleteUpdateOperation",
            "Delete an update operation",
            "internal",
            responses={200: Reply("Deleted")},
        ),
        Operation(
            "GET",
            f"{PREFIX}/internal/update_diff",
            update_diff,
            "GetUpdateDiff",
            "Vulnerabilities added and removed between two operations",
            "internal",
            responses={200: Reply("Update diff", "UpdateDiff")},
            query=(("cur", "string", True), ("prev", "string", False)),
        ),
    ]
