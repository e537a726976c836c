"""Clair's pre-shared-key JWT scheme, both directions (clair-api.md 3.4)."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterable, Iterator

import jwt
from starlette.types import ASGIApp, Receive, Scope, Send

INTRASERVICE_ISSUER = "clair-intraservice"
_LEEWAY_SECONDS = 15
_UNAUTHENTICATED_PATHS = frozenset({"/robots.txt"})


@contextlib.contextmanager
def _any_key_length() -> Iterator[None]:
    # Clair accepts PSKs of any length; PyJWT warns on every call with a key shorter than the
    # hash, which would flood logs (and fail under -W error). No await happens inside, so the
    # process-wide warnings state is not observed by other tasks.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The HMAC key is")
        yield


class PSKVerifier:
    """Verifies HS256 bearer tokens signed with the shared key from an allowed issuer."""

    def __init__(self, key: bytes, issuers: Iterable[str]) -> None:
        self._key = key
        self._issuers = frozenset(issuers) | {INTRASERVICE_ISSUER}

    def verify(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            with _any_key_length():
                claims = jwt.decode(
                    token.strip(),
                    self._key,
                    algorithms=["HS256"],
                    leeway=_LEEWAY_SECONDS,
                    options={"require": [], "verify_aud": False},
                )
        except jwt.PyJWTError:
            return False
        return claims.get("iss") in self._issuers


def sign(key: bytes, issuer: str, now: float | None = None) -> str:
    """A short-lived token as Clair's signer makes it (nbf a minute back, exp a minute on)."""
    t = int(now if now is not None else time.time())
    claims = {"iss": issuer, "iat": t, "nbf": t - 60, "exp": t + 60}
    with _any_key_length():
        return jwt.encode(claims, key, algorithm="HS256")


class PSKAuthMiddleware:
    """401 with an empty body unless the request carries a valid token."""

    def __init__(self, app: ASGIApp, verifier: PSKVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNAUTHENTICATED_PATHS:
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if self.verifier.verify(header):
            await self.app(scope, receive, send)
            return
        await send(
            {"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b""})
