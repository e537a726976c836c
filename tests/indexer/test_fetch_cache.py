"""A blob left on disk by an earlier process is re-hashed before use, since it was not fsynced."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from clair_common.models import Layer
from clair_indexer.fetch import LayerFetcher
from tests.fixtures.images import build_layer, sha256_digest


async def test_torn_cached_blob_is_fetched_again(tmp_path: Path) -> None:
    blob = build_layer({"etc/hostname": b"torn\n"})
    digest = sha256_digest(blob)
    gets = 0

    async def serve(_: web.Request) -> web.Response:
        nonlocal gets
        gets += 1
        return web.Response(body=blob, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/blob", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    layer = Layer(digest, f"http://127.0.0.1:{port}/blob")
    cache = tmp_path / "cache"
    try:
        # As if a crash tore the file after it got its final name.
        (cache / "sha256").mkdir(parents=True)
        (cache / "sha256" / digest.split(":")[1]).write_bytes(blob[: len(blob) // 2])
        fetcher = LayerFetcher(cache, max_cache_bytes=1 << 20)
        try:
            with await fetcher.fetch(layer) as got:
                assert got.path.read_bytes() == blob
            assert gets == 1
        finally:
            await fetcher.close()

        # An intact blob from an earlier process is re-hashed once and then trusted.
        fetcher = LayerFetcher(cache, max_cache_bytes=1 << 20)
        try:
            for _ in range(2):
                with await fetcher.fetch(layer) as got:
                    assert got.path.read_bytes() == blob
            assert gets == 1
        finally:
            await fetcher.close()
    finally:
        await runner.cleanup()
