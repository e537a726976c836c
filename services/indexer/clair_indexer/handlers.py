"""The indexer's route handlers (clair-api.md 1.3): parse, call the service, encode."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from clair_common.http.compress import encoded_response
from clair_common.http.errors import APIError, bad_request, not_found
from clair_common.http.handlers import json_response, path_digest, read_json
from clair_common.http.negotiate import if_none_match, negotiate
from clair_common.http.observe import CONCURRENCY_LIMITED
from clair_common.http.validate import check_body
from clair_common.models import Manifest, ModelError, Vulnerability, is_digest
from clair_indexer.host_slots import HostBusy
from clair_indexer.service import IndexerService, IndexFailed

PREFIX = "/indexer/api/v1"
INDEX_REPORT_TYPE = "application/vnd.clair.index_report.v1+json"
INDEX_STATE_TYPE = "application/vnd.clair.index_state.v1+json"
AFFECTED_TYPE = "application/vnd.clair.affected_manifests.v1+json"
_LINK_REL = "https://projectquay.io/clair/v1"


def _links(digest: str) -> str:
    return (
        f'<{PREFIX}/index_report/{digest}>; rel="{_LINK_REL}/index_report", '
        f'</matcher/api/v1/vulnerability_report/{digest}>; rel="{_LINK_REL}/vulnerability_report"'
    )


async def post_index_report(request: Request, service: IndexerService) -> Response:
    doc = await read_json(request, "manifest")
    layers = doc.get("layers") if isinstance(doc, dict) else None
    max_layers = service.max_manifest_layers
    if max_layers is not None and isinstance(layers, list) and len(layers) > max_layers:
        raise bad_request(
            f"bogus manifest: {len(layers)} layers, more than the limit of {max_layers}"
        )
    try:
        manifest = Manifest.from_json(doc)
    except ModelError as err:
        raise bad_request(f"bogus manifest: {err}") from err
    state = await service.state()
    etag = f'"{state}"'
    if if_none_match(request, etag):
        # As Clair: the links to the reports come with the 412 too.
        return Response(status_code=412, headers={"Link": _links(manifest.hash)})
    try:
        body = await service.index_body(manifest)
    except IndexFailed as err:
        status = 400 if err.client_error else 500
        raise APIError(status, f"failed to start scan: {err}") from err
    except HostBusy as err:
        # Counted with the request-concurrency refusals too: Clair's dashboards (and the
        # chart's) watch that family for 429s, not this project's per-host counter.
        CONCURRENCY_LIMITED.labels(f"{PREFIX}/index_report", "post").inc()
        raise APIError(429, str(err)) from err
    headers = {
        "ETag": etag,
        "Location": f"{PREFIX}/index_report/{manifest.hash}",
        "Link": _links(manifest.hash),
    }
    return encoded_response(
        request, body, status_code=201, media_type=INDEX_REPORT_TYPE, headers=headers
    )


async def get_index_report(request: Request, service: IndexerService) -> Response:
    media = negotiate(request, INDEX_REPORT_TYPE)
    etag = f'"{await service.state()}"'
    digest = path_digest(request)
    # The tag is the index state, which does not change while a report is in progress or
    # once it is deleted: only a finished report that is still there is not modified.
    if if_none_match(request, etag) and await service.finished_json(digest) is not None:
        return Response(status_code=304, headers={"ETag": etag})
    raw = await service.index_report_json(digest)
    if raw is None:
        raise not_found("index report not found")
    return Response(raw, media_type=media, headers={"ETag": etag})


async def delete_index_report(request: Request, service: IndexerService) -> Response:
    await service.delete_manifests([path_digest(request)])
    return Response(status_code=204)


async def delete_index_reports(request: Request, service: IndexerService) -> Response:
    doc = await read_json(request, "digest list")
    if not isinstance(doc, list) or not all(isinstance(d, str) and is_digest(d) for d in doc):
        raise bad_request("failed to deserialize digest list: expected an array of digests")
    deleted = await service.delete_manifests(doc)
    return json_response(deleted or None)


async def get_index_state(request: Request, service: IndexerService) -> Response:
    media = negotiate(request, INDEX_STATE_TYPE)
    state = await service.state()
    etag = f'"{state}"'
    if if_none_match(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return json_response({"state": state}, media_type=media, headers={"ETag": etag})


async def post_affected_manifest(request: Request, service: IndexerService) -> Response:
    media = negotiate(request, AFFECTED_TYPE)
    doc = await read_json(request, "vulnerability list")
    check_body("AffectedManifestsRequest", doc, "vulnerability list")
    # Clair's code reads {"vulnerabilities": [...]}; its OpenAPI says a bare array.
    items = doc["vulnerabilities"] if isinstance(doc, dict) else doc
    vulns = [Vulnerability.from_json(v) for v in items]
    affected = await service.affected_manifests(vulns)
    return json_response(affected.to_json(), media_type=media)
