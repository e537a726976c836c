"""Small wire details Clair clients see: HEAD is refused like any other method a route does
not take, a slash-terminated route redirects its slash-less spelling with 301, and error
responses announce Clair's `Clair-Error` trailer."""

from __future__ import annotations

import aiohttp
from starlette.requests import Request
from starlette.responses import Response

from clair_common.http.app import build_api_app
from clair_common.http.routes import Operation
from tests.common.test_http_app import serving, tiny_operations


async def affected(_: Request) -> Response:
    return Response(b"{}", media_type="application/json")


AFFECTED = Operation(
    "POST",
    "/indexer/api/v1/internal/affected_manifest/",
    affected,
    "AffectedManifests",
    "affected",
    "indexer",
)


async def test_head_is_a_method_not_allowed() -> None:
    async with (
        serving(build_api_app(tiny_operations())) as url,
        aiohttp.ClientSession() as client,
        client.head(url + "/indexer/api/v1/index_state") as resp,
    ):
        assert resp.status == 405
        assert resp.headers["Trailer"] == "Clair-Error"


async def test_slashless_affected_manifest_redirects_permanently() -> None:
    path = "/indexer/api/v1/internal/affected_manifest"
    async with (
        serving(build_api_app(tiny_operations(AFFECTED))) as url,
        aiohttp.ClientSession() as client,
    ):
        async with client.post(url + path + "?x=1", allow_redirects=False) as resp:
            assert resp.status == 301
            assert resp.headers["Location"] == path + "/?x=1"
        async with client.post(url + path + "/", allow_redirects=False) as resp:
            assert resp.status == 200


async def test_error_responses_announce_the_clair_error_trailer() -> None:
    async with (
        serving(build_api_app(tiny_operations())) as url,
        aiohttp.ClientSession() as client,
        client.get(url + "/indexer/api/v1/index_report/nonsense") as resp,
    ):
        assert resp.status in (400, 404)
        assert resp.headers["Trailer"] == "Clair-Error"
        assert (await resp.json())["code"] in ("bad-request", "not-found")
