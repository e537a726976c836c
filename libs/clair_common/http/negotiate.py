"""Accept-header negotiation between a vendor media type and plain JSON."""

from __future__ import annotations

from starlette.requests import Request

from clair_common.http.errors import APIError


def negotiate(request: Request, vendor_type: str) -> str:
    """The media type to answer with, or 415 when the client accepts neither."""
    accept = request.headers.get("accept", "")
    if not accept:
        return vendor_type
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in (vendor_type, "application/json"):
            return media
        if media in ("*/*", "application/*"):
            return vendor_type
    raise APIError(415, f"unable to negotiate common media type for {accept!r}")


def if_none_match(request: Request, etag: str) -> bool:
    """Whether If-None-Match names the given quoted ETag.

    The comparison is weak (RFC 9110 13.1.2): a proxy that weakened our tag (`W/"..."`) still
    gets its 304.
    """
    header = request.headers.get("if-none-match")
    if not header:
        return False
    return any(v.strip().removeprefix("W/") == etag for v in header.split(","))
