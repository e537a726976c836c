"""Two indexer processes over one database: the same manifest is scanned once."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from clair_common.models import Layer, Manifest
from tests.fixtures.images import build_layer, sha256_digest
from tests.fixtures.local_app import serve_app
from tests.fixtures.server import clair_server, wait_ready

SITE = "usr/local/lib/python3.8/site-packages"


async def _blob_server(blobs: dict[str, bytes], hits: dict[str, int]) -> tuple[web.AppRunner, str]:
    async def blob(request: web.Request) -> web.Response:
        digest = request.match_info["digest"]
        hits[digest] = hits.get(digest, 0) + 1
        await asyncio.sleep(0.5)  # keep the first scan in flight while the second POST arrives
        return web.Response(body=blobs[digest], content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/blobs/{digest}", blob)
    runner, address = await serve_app(app)
    return runner, f"http://{address}"


async def test_same_manifest_on_two_replicas_is_scanned_once(pg_dsn: str) -> None:
    layers = [
        build_layer({f"{SITE}/idna-2.7.dist-info/METADATA": b"Name: idna\nVersion: 2.7\n"}),
        build_layer(
            {
                f"{SITE}/certifi-2019.11.28.dist-info/METADATA": (
                    b"Name: certifi\nVersion: 2019.11.28\n"
                )
            }
        ),
    ]
    blobs = {sha256_digest(b): b for b in layers}
    hits: dict[str, int] = {}
    runner, base = await _blob_server(blobs, hits)
    manifest = Manifest("sha256:" + "d" * 64, [Layer(d, f"{base}/blobs/{d}") for d in blobs])
    env = {"CLAIR_INDEXER__CONNSTRING": pg_dsn, "CLAIR_INDEXER__MIGRATIONS": "true"}
    workdir = Path(tempfile.mkdtemp(prefix="replicas-"))
    try:
        with (
            clair_server(workdir, mode="indexer", env=env, name="a") as a,
            clair_server(workdir, mode="indexer", env=env, name="b") as b,
        ):
            await asyncio.gather(asyncio.to_thread(wait_ready, a), asyncio.to_thread(wait_ready, b))
            async with aiohttp.ClientSession() as http:

                async def post(api: str) -> tuple[int, dict[str, Any]]:
                    url = f"{api}/indexer/api/v1/index_report"
                    async with http.post(url, json=manifest.to_json()) as resp:
                        return resp.status, await resp.json()

                (sa, ra), (sb, rb) = await asyncio.gather(post(a.api), post(b.api))
            assert (sa, sb) == (201, 201), (ra, rb)
            assert ra == rb
            assert ra["state"] == "IndexFinished"
            assert {p["name"] for p in ra["packages"].values()} == {"idna", "certifi"}
            assert hits == dict.fromkeys(blobs, 1), hits
    finally:
        await runner.cleanup()
