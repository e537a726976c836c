"""LayerFetcher.fetch_through: a scan fed while the layer downloads, its cache copy written behind.

Real loopback HTTP origins and real files; the disk falling behind is made certain with a
write-behind budget smaller than one chunk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest
from aiohttp import web

from clair_common.models import Layer
from clair_indexer.fetch import FetchError, LayerFetcher
from clair_indexer.fetch._sink import Backlog, WriteBehind
from tests.fixtures.images import sha256_digest
from tests.indexer.test_fetch import (
    MiB,
    StartOrigin,
    blob_of,
    metric,
    serve,  # noqa: F401
    serve_bytes,
    temp_files,
)
from tests.indexer.test_fetch import make_fetcher as make_fetcher


def read_all(blob: BinaryIO) -> str:
    """A consumer: the sha256 of every byte it was given."""
    hasher = hashlib.sha256()
    while chunk := blob.read(MiB):
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


async def cached(fetcher: LayerFetcher, digest: str) -> bool:
    """Whether `digest` lands in the cache once the download behind the scan is done."""
    for _ in range(200):
        if digest in fetcher.cached_digests():
            return True
        await asyncio.sleep(0.01)
    return False


def drip(
    blob: bytes, pieces: int, pause: float, started: asyncio.Event
) -> Callable[[web.Request], object]:
    async def handler(request: web.Request) -> web.StreamResponse:
        started.set()
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(blob)
        await response.prepare(request)
        step = len(blob) // pieces + 1
        for start in range(0, len(blob), step):
            await response.write(blob[start : start + step])
            await asyncio.sleep(pause)
        return response

    return handler


async def test_streamed_scan_reads_the_blob_and_the_cache_keeps_it(
    serve: StartOrigin,  # noqa: F811
    make_fetcher: Callable[..., LayerFetcher],
    tmp_path: Path,
) -> None:
    blob = blob_of(3 * MiB)
    digest = sha256_digest(blob)
    origin = await serve(serve_bytes(blob))
    fetcher = make_fetcher()
    before = metric("downloaded")

    seen = await fetcher.fetch_through(Layer(hash=digest, uri=origin.url("/l")), read_all)

    assert seen == digest
    assert metric("downloaded") == before + 1
    assert await cached(fetcher, digest)
    assert len(origin.requests) == 1
    cache_file = next(p for p in (tmp_path / "cache" / "sha256").iterdir())
    assert sha256_digest(cache_file.read_bytes()) == digest


async def test_cache_copy_given_up_when_the_disk_falls_behind(
    serve: StartOrigin,  # noqa: F811
    make_fetcher: Callable[..., LayerFetcher],
    tmp_path: Path,
) -> None:
    blob = blob_of(3 * MiB, seed=1)
    digest = sha256_digest(blob)
    origin = await serve(serve_bytes(blob))
    fetcher = make_fetcher(write_behind_bytes=1)  # less than one chunk: always behind
    layer = Layer(hash=digest, uri=origin.url("/l"))

    assert await fetcher.fetch_through(layer, read_all) == digest  # the scan stands
    assert not await cached(fetcher, digest)
    assert temp_files(tmp_path / "cache") == []

    # Whoever wants the file later downloads it again, written directly this time.
    with await fetcher.fetch(layer) as fetched:
        assert sha256_digest(fetched.path.read_bytes()) == digest
    assert len(origin.requests) == 2
    assert fetcher.cached_digests() == [digest]


@pytest.mark.parametrize("reads", ["all", "the head only"])
async def test_streamed_scan_fails_when_the_digest_does_not_match(
    serve: StartOrigin,  # noqa: F811
    make_fetcher: Callable[..., LayerFetcher],
    tmp_path: Path,
    reads: str,
) -> None:
    blob = blob_of(2 * MiB, seed=2)
    origin = await serve(serve_bytes(blob_of(2 * MiB, seed=3)))
    fetcher = make_fetcher(retries=0)
    layer = Layer(hash=sha256_digest(blob), uri=origin.url("/l"))

    def consume(stream: BinaryIO) -> str:
        # Every byte arrives before the digest is known; a scan may also stop early (the tar
        # ended): its result must not stand before the download is verified either way.
        return read_all(stream) if reads == "all" else stream.read(10).hex()

    with pytest.raises(FetchError, match="digest mismatch"):
        await fetcher.fetch_through(layer, consume)
    assert fetcher.cached_digests() == []
    assert temp_files(tmp_path / "cache") == []


async def test_a_fetch_joining_an_uncached_stream_downloads_again(
    serve: StartOrigin,  # noqa: F811
    make_fetcher: Callable[..., LayerFetcher],
) -> None:
    blob = blob_of(3 * MiB, seed=4)
    digest = sha256_digest(blob)
    started = asyncio.Event()
    origin = await serve(drip(blob, pieces=6, pause=0.05, started=started))
    fetcher = make_fetcher(write_behind_bytes=1)
    layer = Layer(hash=digest, uri=origin.url("/l"))

    scan = asyncio.ensure_future(fetcher.fetch_through(layer, read_all))
    await started.wait()
    fetched = await fetcher.fetch(layer)  # joins the streaming download, whose copy is dropped

    with fetched:
        assert sha256_digest(fetched.path.read_bytes()) == digest
    assert await scan == digest
    assert len(origin.requests) == 2


def test_write_behind_writes_in_order_and_gives_its_backlog_back(tmp_path: Path) -> None:
    backlog = Backlog(3 * MiB)
    target = tmp_path / "blob"
    sink = WriteBehind(os.open(target, os.O_WRONLY | os.O_CREAT), backlog, "test")
    pieces = [bytes([n]) * MiB for n in range(3)]
    for piece in pieces:
        sink.write(piece)
    assert sink.close()
    assert target.read_bytes() == b"".join(pieces)
    assert backlog.held == 0


def test_write_behind_past_its_backlog_gives_up_and_holds_nothing(tmp_path: Path) -> None:
    backlog = Backlog(MiB)
    sink = WriteBehind(os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT), backlog, "test")
    sink.write(b"x" * 100)
    sink.write(b"y" * (MiB + 1))  # more than the whole budget, however fast the disk
    sink.write(b"z" * 100)  # nothing after that: the copy would have a hole
    assert not sink.close()
    assert backlog.held == 0


def test_write_behind_takes_nothing_after_abort(tmp_path: Path) -> None:
    backlog = Backlog(MiB)
    sink = WriteBehind(os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT), backlog, "test")
    sink.abort()
    sink.write(b"late")  # a hashing thread finishing its chunk after the download was cancelled
    assert backlog.held == 0
    assert not sink.close()
