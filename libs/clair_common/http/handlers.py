"""What the services' route handlers share: JSON in and out, checked path parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from clair_common.http.errors import bad_request
from clair_common.models import is_digest


def json_response(
    doc: Any,
    *,
    status: int = 200,
    media_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=media_type, headers=headers)


async def read_json(request: Request, what: str) -> Any:
    """The request body parsed; Clair's 400 naming `what` when it is not JSON."""
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise bad_request(f"failed to deserialize {what}: {err}") from err


def path_digest(request: Request) -> str:
    """The `{digest}` path parameter; Clair answers a malformed one 400 "malformed path"."""
    digest = str(request.path_params["digest"])
    if not is_digest(digest):
        raise bad_request("malformed path")
    return digest
