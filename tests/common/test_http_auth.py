"""Clair's PSK JWT scheme on the API app (clair-api.md 3.4), over a real listener."""

from __future__ import annotations

import base64
import time
import warnings
from collections.abc import AsyncIterator

import jwt
import pytest

from clair_common.http.app import build_api_app
from clair_common.http.auth import INTRASERVICE_ISSUER, sign
from tests.common.test_http_app import client, serving, tiny_operations

# Clair's config carries the key base64-encoded; the server uses the decoded bytes.
KEY = base64.b64decode("c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGVz")
OTHER_KEY = b"another-secret-key-of-32-bytes!!"
STATE = "/indexer/api/v1/index_state"


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = build_api_app(tiny_operations(), psk_key=KEY, psk_issuers=["clairctl"])
    async with serving(app) as url:
        yield url


async def status_of(base_url: str, path: str, authorization: str | None) -> tuple[int, bytes]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with client() as http, http.get(base_url + path, headers=headers) as resp:
        return resp.status, await resp.read()


async def test_no_token_is_401_with_empty_body(base_url: str) -> None:
    assert await status_of(base_url, STATE, None) == (401, b"")
    assert await status_of(base_url, "/openapi/v1", None) == (401, b"")
    # Unknown paths are behind the check too: nothing leaks about the route table.
    assert await status_of(base_url, "/nope", None) == (401, b"")


async def test_allowed_issuers_get_in(base_url: str) -> None:
    for issuer in ("clairctl", INTRASERVICE_ISSUER):
        status, body = await status_of(base_url, STATE, f"Bearer {sign(KEY, issuer)}")
        assert status == 200, issuer
        assert body == b'{"state":"s1"}'
    status, _ = await status_of(base_url, "/openapi/v1", f"bearer {sign(KEY, 'clairctl')}")
    assert status == 200


def bad_authorizations() -> dict[str, str]:
    """Built when the test runs: tokens minted at import time would age during the session."""
    now = time.time()
    return {
        "unknown-issuer": f"Bearer {sign(KEY, 'quay')}",
        "wrong-key": f"Bearer {sign(OTHER_KEY, 'clairctl')}",
        # exp = now - 20 s: outside the 15 s leeway.
        "expired": f"Bearer {sign(KEY, 'clairctl', now=now - 80)}",
        # nbf = now + 30 s: not yet valid, even with leeway.
        "not-yet-valid": f"Bearer {sign(KEY, 'clairctl', now=now + 90)}",
        "wrong-scheme": f"Basic {sign(KEY, 'clairctl')}",
        "no-token": "Bearer",
        "garbage": "Bearer not.a.jwt",
        "alg-none": "Bearer " + jwt.encode({"iss": "clairctl"}, "", algorithm="none"),
        "hs512": "Bearer " + hs512_token(),
    }


def hs512_token() -> str:
    with warnings.catch_warnings():  # the right key for the wrong algorithm is "too short"
        warnings.simplefilter("ignore")
        return jwt.encode({"iss": "clairctl"}, KEY, algorithm="HS512")


@pytest.mark.parametrize("case", list(bad_authorizations()))
async def test_bad_tokens_are_401(base_url: str, case: str) -> None:
    authorization = bad_authorizations()[case]
    assert await status_of(base_url, STATE, authorization) == (401, b"")


async def test_leeway_and_optional_claims(base_url: str) -> None:
    # exp = now - 10 s is within Clair's 15 s leeway.
    recent = sign(KEY, "clairctl", now=time.time() - 70)
    assert (await status_of(base_url, STATE, f"Bearer {recent}"))[0] == 200
    # Clair requires no time claims at all, only a known issuer.
    bare = jwt.encode({"iss": "clairctl"}, KEY, algorithm="HS256")
    assert (await status_of(base_url, STATE, f"Bearer {bare}"))[0] == 200


async def test_robots_txt_needs_no_token(base_url: str) -> None:
    status, body = await status_of(base_url, "/robots.txt", None)
    assert status == 200
    assert body.startswith(b"User-agent: *")


def test_signed_claims_match_clairs_signer() -> None:
    now = 1_800_000_000
    claims = jwt.decode(
        sign(KEY, "clairctl", now=now),
        KEY,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert claims == {"iss": "clairctl", "iat": now, "nbf": now - 60, "exp": now + 60}


async def test_short_keys_work_as_in_clair() -> None:
    short = b"sixteen-byte-key"
    app = build_api_app(tiny_operations(), psk_key=short, psk_issuers=["clairctl"])
    async with serving(app) as url:
        assert (await status_of(url, STATE, f"Bearer {sign(short, 'clairctl')}"))[0] == 200
        assert (await status_of(url, STATE, f"Bearer {sign(KEY, 'clairctl')}"))[0] == 401
