"""The matcher's route handlers (clair-api.md 1.4): parse, call the service, encode."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from clair_common.http.compress import encoded_response
from clair_common.http.errors import APIError, bad_request, not_found
from clair_common.http.handlers import json_response, path_digest
from clair_common.http.negotiate import if_none_match, negotiate
from clair_common.models import UpdateOperation
from clair_matcher.service import MatcherService, ReportNotFinished

PREFIX = "/matcher/api/v1"
REPORT_TYPE = "application/vnd.clair.vulnerability_report.v1+json"


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


async def get_vulnerability_report(request: Request, service: MatcherService) -> Response:
    digest = path_digest(request)
    media_type = _report_media_type(request)
    if not await service.initialized():
        return Response(status_code=202)
    inputs = await service.report_inputs(digest)
    if inputs is None:
        raise not_found(f'index report for manifest "{digest}" not found')
    headers = {
        "Cache-Control": f"max-age={service.cache_age}",
        "ETag": inputs.etag,
        "Vary": "Accept",
    }
    # The tag covers the stored index report, and only finished ones are ever answered
    # with one: a match needs no parse of the report (nor does a cached body, below).
    if if_none_match(request, inputs.etag):
        return Response(status_code=304, headers=headers)
    try:
        body = await service.report_body(inputs)
    except ReportNotFinished as err:
        raise not_found(f'index report for manifest "{digest}" not found') from err
    except Exception as err:
        raise APIError(500, f"failed to start scan: {err}") from err
    return encoded_response(request, body, media_type=media_type, headers=headers)


async def get_update_operations(request: Request, service: MatcherService) -> Response:
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
    return json_response(_operations_json(ops), headers=headers or None)


async def delete_update_operation(request: Request, service: MatcherService) -> Response:
    ref = _uuid(str(request.path_params["ref"]), "update operation ref")
    await service.delete_update_operations([ref])
    return Response(status_code=200)


async def get_update_diff(request: Request, service: MatcherService) -> Response:
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
    return json_response(diff.to_json())
