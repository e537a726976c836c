"""The matcher's HTTP routes (clair-api.md 1.4): parse, call the service, encode."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from clair_common.clients import Indexer
from clair_common.http.compress import choose_encoding
from clair_common.http.errors import APIError, bad_request, not_found
from clair_common.http.negotiate import if_none_match, negotiate
from clair_common.http.routes import Operation, Reply
from clair_common.models import UpdateOperation, is_digest
from clair_matcher.service import MatcherService, ReportNotFinished

PREFIX = "/matcher/api/v1"
REPORT_TYPE = "application/vnd.clair.vulnerability_report.v1+json"


def _json(doc: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), media_type="application/json", headers=headers)


def _uuid(value: str, name: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as err:
        raise bad_request(f"could not parse {name} into uuid: {value!r}") from err


_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("", "0", "f", "F", "FALSE", "false", "False")


def _go_bool(value: str, name: str) -> bool:
    """Go's strconv.ParseBool; unparsable values are refused (Clair took them as false)."""
    if value not in _GO_TRUE and value not in _GO_FALSE:
        raise bad_request(f"{name!r} query param: not a boolean: {value[:64]!r}")
    return value in _GO_TRUE


def _report_media_type(request: Request) -> str:
    # Clair never answered 415 here (it sent a fixed, wrong type), so a client whose Accept
    # names neither type still gets the report, in our vendor type.
    try:
        return negotiate(request, REPORT_TYPE)
    except APIError:
        return REPORT_TYPE


def _operations_json(ops: dict[str, list[UpdateOperation]]) -> dict[str, Any]:
    return {name: [op.to_json() for op in items] for name, items in ops.items()}


def build_operations(service: MatcherService, indexer: Indexer, cache_age: int) -> list[Operation]:
    async def vulnerability_report(request: Request) -> Response:
        digest = str(request.path_params["digest"])
        if not is_digest(digest):
            raise bad_request("malformed path")
        media_type = _report_media_type(request)
        if not await service.initialized():
            return Response(status_code=202)
        # The update refs are read before matching: see MatcherService.report_etag.
        index_json, index_state, refs = await asyncio.gather(
            indexer.index_report_json(digest), indexer.state(), service.latest_refs()
        )
        if index_json is None:
            raise not_found(f'index report for manifest "{digest}" not found')
        headers = {
            "Cache-Control": f"max-age={cache_age}",
            "ETag": service.report_etag(digest, index_state, refs, index_json),
            "Vary": "Accept",
        }
        # The tag covers the stored index report, and only finished ones are ever answered
        # with one: a match needs no parse of the report (nor does a cached body, below).
        if if_none_match(request, headers["ETag"]):
            return Response(status_code=304, headers=headers)
        encoding = choose_encoding(request.headers.get("accept-encoding", ""))
        try:
            body, encoded = await service.report_body(index_json, headers["ETag"], refs, encoding)
        except ReportNotFinished as err:
            raise not_found(f'index report for manifest "{digest}" not found') from err
        except Exception as err:
            raise APIError(500, f"failed to start scan: {err}") from err
        if encoded and encoding is not None:  # compressed here, so the middleware passes it
            headers["Content-Encoding"] = encoding
            headers["Vary"] = "Accept, Accept-Encoding"
        return Response(body, media_type=media_type, headers=headers)

    async def update_operation(request: Request) -> Response:
        kind = request.query_params.get("kind", "") or "vulnerability"
        if kind not in ("vulnerability", "enrichment"):
            raise bad_request(f"unknown kind: {kind!r}")
        latest = _go_bool(request.query_params.get("latest", ""), "latest")
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
        ref = _uuid(str(request.path_params["ref"]), "update operation ref")
        await service.delete_update_operations([ref])
        return Response(status_code=200)

    async def update_diff(request: Request) -> Response:
        raw_cur = request.query_params.get("cur", "")
        if not raw_cur:
            raise bad_request('"cur" query param is required')
        cur = _uuid(raw_cur, '"cur" query param')
        raw_prev = request.query_params.get("prev", "")
        prev = _uuid(raw_prev, '"prev" query param') if raw_prev else None  # None: all time
        try:
            diff = await service.update_diff(prev, cur)
        except LookupError as err:  # an unknown ref: the client's to fix, not a server error
            raise not_found(f"could not get update diff: {err}") from err
        except ValueError as err:  # a ref of another kind than vulnerability
            raise bad_request(f"could not get update diff: {err}") from err
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
            responses={200: Reply("Deleted"), 400: Reply("Bad uuid", "Error")},
        ),
        Operation(
            "GET",
            f"{PREFIX}/internal/update_diff",
            update_diff,
            "GetUpdateDiff",
            "Vulnerabilities added and removed between two operations",
            "internal",
            responses={200: Reply("Update diff", "UpdateDiff"), 400: Reply("Bad uuid", "Error")},
            query=(("cur", "string", True), ("prev", "string", False)),
        ),
    ]
