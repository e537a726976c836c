"""Clair's JSON error body and status-code vocabulary (clair-api.md 1.2)."""

from __future__ import annotations

import orjson
from starlette.responses import Response

_CODES = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "bad-request",  # Clair's vocabulary has no code of its own for an oversized body
    429: "too-many-requests",
}


class APIError(Exception):
    """Raised by route code; turned into Clair's error body by the app."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_code(status: int) -> str:
    return _CODES.get(status, "internal-error")


def error_response(status: int, message: str) -> Response:
    body = orjson.dumps({"code": error_code(status), "message": message})
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        # Clair announces a `Clair-Error` trailer on every error response.
        headers={"X-Content-Type-Options": "nosniff", "Trailer": "Clair-Error"},
    )


def bad_request(message: str) -> APIError:
    return APIError(400, message)


def not_found(message: str) -> APIError:
    return APIError(404, message)
