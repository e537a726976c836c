"""The notifier's route handlers (clair-api.md 1.5): parse, call the service, encode."""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request
from starlette.responses import Response

from clair_common.http.errors import APIError, bad_request, not_found
from clair_common.http.handlers import json_response
from clair_common.http.negotiate import negotiate
from clair_notifier.service import DEFAULT_PAGE_SIZE, NoReceiptError, NotifierService

PREFIX = "/notifier/api/v1"
PAGE_TYPE = "application/vnd.clair.notification_page.v1+json"
_GO_INT = re.compile(r"^[+-]?[0-9]+$")  # what Go's strconv.ParseInt(s, 10, 64) takes
_INT64 = 1 << 63


def _notification_id(request: Request) -> uuid.UUID:
    raw = str(request.path_params["id"])
    try:
        return uuid.UUID(raw)
    except ValueError as err:
        raise bad_request(f"could not parse notification id: {raw!r}: {err}") from err


def _page_size(raw: str) -> int:
    """Clair's rules: absent or 0 → 500; not an integer → 400; negative is passed on (→ 500)."""
    if not raw:
        return DEFAULT_PAGE_SIZE
    if not _GO_INT.match(raw) or not -_INT64 <= int(raw) < _INT64:
        raise bad_request('could not parse "page_size" query param into integer')
    return int(raw) or DEFAULT_PAGE_SIZE


def _next(raw: str) -> uuid.UUID | None:
    """Optional; the nil uuid means the first page, as if absent."""
    if not raw:
        return None
    try:
        value = uuid.UUID(raw)
    except ValueError as err:
        # Clair's message, its "integer" included, so clients matching on it keep working.
        raise bad_request('could not parse "next" query param into integer') from err
    return None if value.int == 0 else value


async def get_notification(request: Request, service: NotifierService) -> Response:
    notification_id = _notification_id(request)
    size = _page_size(request.query_params.get("page_size", ""))
    after = _next(request.query_params.get("next", ""))
    media_type = negotiate(request, PAGE_TYPE)
    try:
        doc = await service.page(notification_id, size, after)
    except ValueError as err:  # a negative page_size: Clair's database refuses the LIMIT
        raise APIError(500, f"failed to retrieve notifications: {err}") from err
    return json_response(doc, media_type=media_type)


async def delete_notification(request: Request, service: NotifierService) -> Response:
    notification_id = _notification_id(request)
    try:
        await service.delete(notification_id)
    except NoReceiptError as err:  # Clair answers 500 (quay/clair#1716): a plain bug
        raise not_found(f"could not delete notification: {err}") from err
    return Response(status_code=200)
