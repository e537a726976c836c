"""Re-POSTed index reports come from the report cache, compressed once per encoding asked for."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import zstandard

from tests.fixtures.images import build_layer
from tests.fixtures.registry import LocalRegistry
from tests.indexer.harness import Indexer, running_indexer

SITE = "usr/local/lib/python3.8/site-packages"


@pytest.fixture
async def indexer(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Indexer]:
    async with running_indexer(pg_dsn, tmp_path / "cache") as idx:
        yield idx


async def test_reposted_reports_are_sent_in_the_encoding_asked_for(
    indexer: Indexer, registry: LocalRegistry
) -> None:
    files = {
        f"{SITE}/pkg{n}-1.{n}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: pkg{n}\nVersion: 1.{n}\n".encode()
        )
        for n in range(20)
    }
    manifest = await registry.push_image("encoded", [build_layer(files)])
    path = "/indexer/api/v1/index_report"
    body = manifest.to_json()
    assert (await indexer.client.post(path, json=body)).status_code == 201  # indexes it
    cached = await indexer.client.post(path, json=body, headers={"Accept-Encoding": "identity"})
    assert cached.status_code == 201 and "Content-Encoding" not in cached.headers
    plain = cached.content
    assert len(plain) > 512  # worth compressing

    decoders: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip.decompress,
        "zstd": zstandard.ZstdDecompressor().decompress,
    }
    for encoding, decode in decoders.items():
        for _ in range(2):  # the second one is the variant made by the first
            async with indexer.client.stream(
                "POST", path, json=body, headers={"Accept-Encoding": encoding}
            ) as resp:
                raw = b"".join([chunk async for chunk in resp.aiter_raw()])
            assert resp.status_code == 201
            assert resp.headers["Content-Encoding"] == encoding
            assert resp.headers["Vary"] == "Accept-Encoding"
            assert resp.headers["ETag"] and resp.headers["Location"].endswith(manifest.hash)
            assert int(resp.headers["Content-Length"]) == len(raw) < len(plain)
            assert decode(raw) == plain
    again = await indexer.client.post(path, json=body, headers={"Accept-Encoding": "identity"})
    assert again.content == plain and "Content-Encoding" not in again.headers
