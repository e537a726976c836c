"""`GET /openapi/v1`: an OpenAPI 3.1 document generated from our own route declarations."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clair_common import __version__
from clair_common.http.errors import APIError
from clair_common.http.negotiate import if_none_match
from clair_common.http.routes import Operation
from clair_common.http.schemas import COMPONENTS

_JSON_TYPES = ("application/openapi+json", "application/vnd.oai.openapi+json", "application/json")
_YAML_TYPES = ("application/openapi+yaml", "application/vnd.oai.openapi+yaml", "application/yaml")


_UUID = {"type": "string", "format": "uuid"}
# What the routes accept for parameters of these names (anything else is answered 400).
_PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "digest": {"$ref": "#/components/schemas/Digest"},
    "ref": _UUID,
    "id": _UUID,
    "cur": _UUID,
    "prev": _UUID,
    "next": _UUID,
    "kind": {"enum": ["", "vulnerability", "enrichment"]},
    "page_size": {"type": "integer", "minimum": 0},
}


def _param_schema(name: str, typ: str = "string") -> dict[str, Any]:
    return _PARAM_SCHEMAS.get(name, {"type": typ})


def _path_params(path: str) -> list[dict[str, Any]]:
    params = []
    for segment in path.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            name = segment[1:-1].split(":", 1)[0]
            params.append(
                {"name": name, "in": "path", "required": True, "schema": _param_schema(name)}
            )
    return params


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
    }
    params = _path_params(op.path) + [
        {"name": name, "in": "query", "required": required, "schema": _param_schema(name, typ)}
        for name, typ, required in op.query
    ]
    if params:
        doc["parameters"] = params
    if op.request_schema:
        doc["requestBody"] = {
            "required": True,
            "content": {
                op.request_media_type: {
                    "schema": {"$ref": f"#/components/schemas/{op.request_schema}"}
                }
            },
        }
    responses: dict[str, Any] = {}
    for status, reply in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": reply.description}
        if reply.schema:
            entry["content"] = {
                reply.media_type: {"schema": {"$ref": f"#/components/schemas/{reply.schema}"}}
            }
        if reply.headers:
            entry["headers"] = {h: {"schema": {"type": "string"}} for h in reply.headers}
        responses[str(status)] = entry
    responses.setdefault(
        "default",
        {
            "description": "Clair's error body",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    )
    doc["responses"] = responses
    return doc


# What the notifier POSTs to `notifier.webhook.target` (Clair sends it as plain JSON).
_WEBHOOKS = {
    "notification": {
        "post": {
            "operationId": "NotificationWebhook",
            "summary": "A new notification set is ready to be paged through",
            "tags": ["notifier"],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/NotificationWebhook"}
                    }
                },
            },
            "responses": {"200": {"description": "Delivered; any other status is retried"}},
        }
    }
}


def build_document(operations: Sequence[Operation]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Clair Container Analyzer",
            "version": "1.2.0",
            "description": f"Clair v4 API as served by clair-py {__version__}.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "indexer"},
            {"name": "matcher"},
            {"name": "notifier"},
            {"name": "internal", "description": "Internal endpoints, exempt from API stability."},
        ],
        "paths": paths,
        "webhooks": _WEBHOOKS,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"PSK": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{}, {"PSK": []}],
    }


def openapi_route(operations: Sequence[Operation]) -> Route:
    document = build_document(operations)
    as_json = orjson.dumps(document)
    as_yaml = yaml.safe_dump(document, sort_keys=False).encode()
    etag = '"' + hashlib.sha256(as_json).hexdigest()[:32] + '"'

    async def endpoint(request: Request) -> Response:
        accept = request.headers.get("accept", "*/*")
        media = _negotiate(accept)
        if if_none_match(request, etag):
            return Response(status_code=304, headers={"ETag": etag})
        body = as_yaml if media in _YAML_TYPES else as_json
        return Response(body, media_type=media, headers={"ETag": etag})

    return Route("/openapi/v1", endpoint, methods=["GET"])


def _negotiate(accept: str) -> str:
    offered = [p.split(";")[0].strip().lower() for p in accept.split(",")]
    for media in offered:
        if media in _JSON_TYPES or media in _YAML_TYPES:
            return media
        if media in ("*/*", "application/*", ""):
            return _JSON_TYPES[0]
    raise APIError(415, f"no acceptable media type in {accept!r}")
