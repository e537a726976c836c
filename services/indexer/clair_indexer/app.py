"""The indexer's HTTP routes (clair-api.md 1.3): parse, call the service, encode."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from clair_common.http.compress import choose_encoding
from clair_common.http.errors import APIError, bad_request, not_found
from clair_common.http.negotiate import if_none_match, negotiate
from clair_common.http.routes import Operation, Reply
from clair_common.http.validate import check_body
from clair_common.models import Manifest, ModelError, Vulnerability, is_digest
from clair_indexer.service import IndexerService, IndexFailed

PREFIX = "/indexer/api/v1"
INDEX_REPORT_TYPE = "application/vnd.clair.index_report.v1+json"
INDEX_STATE_TYPE = "application/vnd.clair.index_state.v1+json"
AFFECTED_TYPE = "application/vnd.clair.affected_manifests.v1+json"
_LINK_REL = "https://projectquay.io/clair/v1"


def _json(
    doc: Any, status: int = 200, media_type: str = "application/json", **headers: str
) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=media_type, headers=headers)


async def _body(request: Request, what: str) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise bad_request(f"failed to deserialize {what}: {err}") from err


def _digest(request: Request) -> str:
    digest = str(request.path_params["digest"])
    if not is_digest(digest):
        raise bad_request("malformed path")
    return digest


def _links(digest: str) -> str:
    return (
        f'<{PREFIX}/index_report/{digest}>; rel="{_LINK_REL}/index_report", '
        f'</matcher/api/v1/vulnerability_report/{digest}>; rel="{_LINK_REL}/vulnerability_report"'
    )


def build_operations(
    service: IndexerService, *, max_manifest_layers: int | None = None
) -> list[Operation]:
    """`max_manifest_layers` (None or below 1: no limit) caps the layers of a manifest."""
    max_layers = max_manifest_layers if max_manifest_layers and max_manifest_layers > 0 else None

    async def post_index_report(request: Request) -> Response:
        doc = await _body(request, "manifest")
        layers = doc.get("layers") if isinstance(doc, dict) else None
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
            encoding = choose_encoding(request.headers.get("accept-encoding", ""))
            body, encoded = await service.index_encoded(manifest, encoding)
        except IndexFailed as err:
            status = 400 if err.client_error else 500
            raise APIError(status, f"failed to start scan: {err}") from err
        headers = {
            "ETag": etag,
            "Location": f"{PREFIX}/index_report/{manifest.hash}",
            "Link": _links(manifest.hash),
        }
        if encoded and encoding is not None:
            headers["Content-Encoding"] = encoding
            headers["Vary"] = "Accept-Encoding"
        return Response(body, status_code=201, media_type=INDEX_REPORT_TYPE, headers=headers)

    async def get_index_report(request: Request) -> Response:
        media = negotiate(request, INDEX_REPORT_TYPE)
        etag = f'"{await service.state()}"'
        digest = _digest(request)
        # The tag is the index state, which does not change while a report is in progress or
        # once it is deleted: only a finished report that is still there is not modified.
        if if_none_match(request, etag) and await service.finished_json(digest) is not None:
            return Response(status_code=304, headers={"ETag": etag})
        raw = await service.index_report_json(digest)
        if raw is None:
            raise not_found("index report not found")
        return Response(raw, media_type=media, headers={"ETag": etag})

    async def delete_index_report(request: Request) -> Response:
        await service.delete_manifests([_digest(request)])
        return Response(status_code=204)

    async def bulk_delete(request: Request) -> Response:
        doc = await _body(request, "digest list")
        if not isinstance(doc, list) or not all(isinstance(d, str) and is_digest(d) for d in doc):
            raise bad_request("failed to deserialize digest list: expected an array of digests")
        deleted = await service.delete_manifests(doc)
        return _json(deleted or None)

    async def index_state(request: Request) -> Response:
        media = negotiate(request, INDEX_STATE_TYPE)
        state = await service.state()
        etag = f'"{state}"'
        if if_none_match(request, etag):
            return Response(status_code=304, headers={"ETag": etag})
        return _json({"state": state}, media_type=media, ETag=etag)

    async def affected_manifest(request: Request) -> Response:
        media = negotiate(request, AFFECTED_TYPE)
        doc = await _body(request, "vulnerability list")
        check_body("AffectedManifestsRequest", doc, "vulnerability list")
        # Clair's code reads {"vulnerabilities": [...]}; its OpenAPI says a bare array.
        items = doc["vulnerabilities"] if isinstance(doc, dict) else doc
        vulns = [Vulnerability.from_json(v) for v in items]
        affected = await service.affected_manifests(vulns)
        return _json(affected.to_json(), media_type=media)

    report = Reply("IndexReport", "IndexReport", INDEX_REPORT_TYPE, ("ETag",))
    return [
        Operation(
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
        Operation(
            "DELETE",
            f"{PREFIX}/index_report",
            bulk_delete,
            "DeleteManifests",
            "Delete the IndexReports of several manifests",
            "indexer",
            request_schema="BulkDelete",
            responses={200: Reply("Deleted digests", "BulkDeleteResult")},
        ),
        Operation(
            "GET",
            f"{PREFIX}/index_report/{{digest}}",
            get_index_report,
            "GetIndexReport",
            "Retrieve the IndexReport of a manifest",
            "indexer",
            responses={
                200: report,
                304: Reply("Not modified"),
                400: Reply("Malformed digest", "Error"),
                404: Reply("Not found", "Error"),
                415: Reply("Unsupported media type", "Error"),
            },
        ),
        Operation(
            "DELETE",
            f"{PREFIX}/index_report/{{digest}}",
            delete_index_report,
            "DeleteManifest",
            "Delete the IndexReport of a manifest",
            "indexer",
            responses={204: Reply("Deleted")},
        ),
        Operation(
            "GET",
            f"{PREFIX}/index_state",
            index_state,
            "IndexState",
            "Report the indexer's configuration state",
            "indexer",
            responses={
                200: Reply("Indexer state", "IndexState", INDEX_STATE_TYPE, ("ETag",)),
                304: Reply("Not modified"),
            },
        ),
        Operation(
            "POST",
            f"{PREFIX}/internal/affected_manifest/",
            affected_manifest,
            "AffectedManifests",
            "Manifests affected by the given vulnerabilities",
            "internal",
            request_schema="AffectedManifestsRequest",
            responses={200: Reply("Affected manifests", "AffectedManifests", AFFECTED_TYPE)},
        ),
    ]


# The limited paths a refusal metric may name (any other limited path is a 404 anyway).
LIMITED_ENDPOINTS = frozenset((f"{PREFIX}/index_report", f"{PREFIX}/internal/affected_manifest/"))


def limited(method: str, path: str) -> bool:
    """Clair limits every POST under the API and every call to exactly index_report."""
    return (method == "POST" and path.startswith(PREFIX + "/")) or path == f"{PREFIX}/index_report"
