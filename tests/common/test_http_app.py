"""The API app factory over a real Hypercorn listener: Clair's errors, robots.txt, compression,
and the OpenAPI endpoint. `serving` and `tiny_operations` are shared with the other
test_http_* modules."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
import zstandard
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from starlette.requests import Request
from starlette.responses import Response

from clair_common.http.app import build_api_app
from clair_common.http.compress import choose_encoding
from clair_common.http.errors import bad_request, not_found
from clair_common.http.routes import Operation, Reply

DIGEST = "sha256:" + "ab" * 32
# ~20 kB of realistic, compressible JSON: well over the compression threshold.
BIG_BODY = orjson.dumps(
    {
        "packages": {
            str(i): {"id": str(i), "name": f"lib{i}", "version": f"1.{i}-1", "kind": "binary"}
            for i in range(300)
        }
    }
)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Run `app` under Hypercorn on a kernel-chosen loopback port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = HypercornConfig()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns (and closes) the socket now
    config.accesslog = None
    config.graceful_timeout = 1
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def client(**kwargs: Any) -> aiohttp.ClientSession:
    """A session that neither asks for nor undoes compression unless a test says so."""
    return aiohttp.ClientSession(
        auto_decompress=False, skip_auto_headers=["Accept-Encoding"], **kwargs
    )


async def index_state(_: Request) -> Response:
    return Response(orjson.dumps({"state": "s1"}), media_type="application/json")


async def get_index_report(request: Request) -> Response:
    if request.path_params["digest"] != DIGEST:
        raise not_found("index report not found")
    return Response(BIG_BODY, media_type="application/json")


async def post_index_report(_: Request) -> Response:
    raise bad_request("bogus manifest: layers: a manifest needs at least one layer")


async def small(_: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


async def boom(_: Request) -> Response:
    raise RuntimeError("kaboom")


async def request_id(request: Request) -> Response:
    return Response(request.state.request_id, media_type="text/plain")


def tiny_operations(*extra: Operation) -> list[Operation]:
    prefix = "/indexer/api/v1"
    return [
        Operation(
            "GET",
            f"{prefix}/index_state",
            index_state,
            "IndexState",
            "state",
            "indexer",
            responses={200: Reply("state", "IndexState")},
        ),
        Operation(
            "GET",
            f"{prefix}/index_report/{{digest}}",
            get_index_report,
            "GetIndexReport",
            "report",
            "indexer",
            responses={200: Reply("report", "IndexReport"), 404: Reply("missing", "Error")},
        ),
        Operation(
            "POST",
            f"{prefix}/index_report",
            post_index_report,
            "Index",
            "index",
            "indexer",
            request_schema="Manifest",
        ),
        Operation("GET", "/test/small", small, "Small", "small", "internal"),
        Operation("GET", "/test/boom", boom, "Boom", "boom", "internal"),
        Operation("GET", "/test/request_id", request_id, "RequestID", "id", "internal"),
        *extra,
    ]


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    async with serving(build_api_app(tiny_operations())) as url:
        yield url


async def assert_clair_error(resp: aiohttp.ClientResponse, status: int, code: str) -> str:
    assert resp.status == status
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    body = orjson.loads(await resp.read())
    assert set(body) == {"code", "message"}
    assert body["code"] == code
    message: str = body["message"]
    return message


# -- errors ----------------------------------------------------------------------------------


async def test_api_errors_use_clairs_body(base_url: str) -> None:
    async with client() as http:
        async with http.post(f"{base_url}/indexer/api/v1/index_report", data=b"{}") as resp:
            message = await assert_clair_error(resp, 400, "bad-request")
            assert message.startswith("bogus manifest")
        url = f"{base_url}/indexer/api/v1/index_report/sha256:{'00' * 32}"
        async with http.get(url) as resp:
            assert await assert_clair_error(resp, 404, "not-found") == "index report not found"


async def test_unknown_path_is_go_plain_text_404(base_url: str) -> None:
    async with client() as http, http.get(f"{base_url}/indexer/api/v2/nothing") as resp:
        assert resp.status == 404
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert await resp.read() == b"404 page not found\n"


async def test_wrong_method_is_405_json(base_url: str) -> None:
    async with client() as http:
        async with http.put(f"{base_url}/indexer/api/v1/index_state") as resp:
            message = await assert_clair_error(resp, 405, "method-not-allowed")
            assert message == "method disallowed: PUT"
        async with http.delete(f"{base_url}/robots.txt") as resp:
            assert await assert_clair_error(resp, 405, "method-not-allowed") == (
                "method disallowed: DELETE"
            )


async def test_unexpected_exception_is_internal_error(base_url: str) -> None:
    async with client() as http, http.get(f"{base_url}/test/boom") as resp:
        await assert_clair_error(resp, 500, "internal-error")


async def test_robots_txt(base_url: str) -> None:
    async with client() as http, http.get(f"{base_url}/robots.txt") as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert await resp.read() == b"User-agent: *\nDisallow: /\n"


async def test_request_ids_are_fresh_16_hex(base_url: str) -> None:
    async with client() as http:
        ids = []
        for _ in range(3):
            async with http.get(f"{base_url}/test/request_id") as resp:
                ids.append((await resp.read()).decode())
    assert len(set(ids)) == 3
    for rid in ids:
        assert len(rid) == 16
        int(rid, 16)


# -- compression -----------------------------------------------------------------------------


def _unzstd(data: bytes) -> bytes:
    # A streaming decompressor: the frame need not declare its content size.
    out: bytes = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return out


DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,  # HTTP's "deflate" is the zlib format
    "zstd": _unzstd,
}


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
async def test_each_encoding_round_trips(base_url: str, encoding: str) -> None:
    url = f"{base_url}/indexer/api/v1/index_report/{DIGEST}"
    async with client() as http, http.get(url, headers={"Accept-Encoding": encoding}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == encoding
        assert "Accept-Encoding" in resp.headers["Vary"]
        raw = await resp.read()
    assert int(resp.headers["Content-Length"]) == len(raw) < len(BIG_BODY)
    assert DECODERS[encoding](raw) == BIG_BODY


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip;q=0, deflate", "deflate"),
        ("gzip;q=0.5, zstd;q=0.1", "gzip"),
        ("zstd, gzip, deflate", "zstd"),
        ("*", "zstd"),
        ("*;q=0, gzip", "gzip"),
        ("br, identity", None),
        ("gzip;q=0", None),
        ("", None),
    ],
)
async def test_q_values_are_honoured(base_url: str, accept: str, expected: str | None) -> None:
    assert choose_encoding(accept) == expected
    url = f"{base_url}/indexer/api/v1/index_report/{DIGEST}"
    headers = {"Accept-Encoding": accept} if accept else {}
    async with client() as http, http.get(url, headers=headers) as resp:
        assert resp.headers.get("Content-Encoding") == expected
        raw = await resp.read()
    assert (raw == BIG_BODY) == (expected is None)


async def test_small_bodies_and_no_accept_encoding_are_identity(base_url: str) -> None:
    async with client() as http:
        headers = {"Accept-Encoding": "gzip, zstd"}
        async with http.get(f"{base_url}/test/small", headers=headers) as resp:
            assert "Content-Encoding" not in resp.headers
            assert await resp.read() == b'{"ok":true}'
        url = f"{base_url}/indexer/api/v1/index_report/{DIGEST}"
        async with http.get(url) as resp:
            assert "Content-Encoding" not in resp.headers
            assert await resp.read() == BIG_BODY


async def test_aiohttp_default_negotiation_decodes(base_url: str) -> None:
    """What a stock client sees: it asks for compression and gets the document back."""
    url = f"{base_url}/indexer/api/v1/index_report/{DIGEST}"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.headers["Content-Encoding"] in ("gzip", "deflate", "zstd")
        assert await resp.read() == BIG_BODY


# -- /openapi/v1 -----------------------------------------------------------------------------


async def fetch_openapi(base_url: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    async with client() as http, http.get(f"{base_url}/openapi/v1", headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


async def test_openapi_json_by_default(base_url: str) -> None:
    for headers in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
        status, resp_headers, body = await fetch_openapi(base_url, headers)
        assert status == 200
        assert "json" in resp_headers["Content-Type"]
        doc = orjson.loads(body)
        assert doc["openapi"] == "3.1.0"
        assert doc["paths"]["/indexer/api/v1/index_report/{digest}"]["get"]["operationId"] == (
            "GetIndexReport"
        )


async def test_openapi_yaml_when_asked(base_url: str) -> None:
    _, _, as_json = await fetch_openapi(base_url, {})
    status, headers, as_yaml = await fetch_openapi(base_url, {"Accept": "application/openapi+yaml"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openapi+yaml")
    assert yaml.safe_load(as_yaml) == orjson.loads(as_json)


async def test_openapi_etag_and_304(base_url: str) -> None:
    _, headers, _ = await fetch_openapi(base_url, {})
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    status, again, body = await fetch_openapi(base_url, {"If-None-Match": etag})
    assert status == 304
    assert again["ETag"] == etag
    assert body == b""
    status, _, _ = await fetch_openapi(base_url, {"If-None-Match": f'"stale", {etag}'})
    assert status == 304
    status, _, _ = await fetch_openapi(base_url, {"If-None-Match": '"stale"'})
    assert status == 200


async def test_openapi_refuses_html(base_url: str) -> None:
    async with client() as http:
        resp = await http.get(f"{base_url}/openapi/v1", headers={"Accept": "text/html"})
        async with resp:
            await assert_clair_error(resp, 415, "internal-error")


def test_openapi_lists_the_operations_given() -> None:
    app = build_api_app(tiny_operations())
    paths: Sequence[str] = [getattr(route, "path", "") for route in app.routes]
    assert "/openapi/v1" in paths
    assert "/robots.txt" in paths
