"""LayerFetcher: the cache, single-flight downloads, retries and the deadline put together."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import aiohttp
from yarl import URL

from clair_common.models import Layer, ModelError, parse_digest
from clair_common.telemetry import span
from clair_indexer._tap import ConsumerGaveUp, StreamTap, TapBroken
from clair_indexer.fetch._cache import BlobCache, Entry, FetchedLayer
from clair_indexer.fetch._download import Downloader
from clair_indexer.fetch._errors import FetchError, NotCached
from clair_indexer.fetch._flights import Flights
from clair_indexer.fetch._metrics import FETCH_DURATION, FETCH_REQUESTS, LAYER_SIZE
from clair_indexer.fetch._policy import FetchPolicy
from clair_indexer.fetch._retry import retrying
from clair_indexer.fetch._sink import WRITE_BEHIND_BYTES, Backlog

T = TypeVar("T")

log = logging.getLogger("clair_indexer.fetch")

_CHUNK = 1 << 20


class LayerFetcher:
    def __init__(
        self,
        cache_dir: Path,
        *,
        max_cache_bytes: int,
        airgap: bool = False,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        session: aiohttp.ClientSession | None = None,
        max_concurrent: int = 10,
        deadline: float | None = None,
        min_rate: float = 0,
        rate_window: float = 0,
        policy: FetchPolicy | None = None,
        write_behind_bytes: int = WRITE_BEHIND_BYTES,
    ) -> None:
        """`deadline`: seconds one layer's download may take, retries included (None: no
        limit); `min_rate`: bytes/s a download must keep up over each `rate_window` seconds,
        waiting for the response included (0: no floor). Both fail as the client's fault.
        `write_behind_bytes`: how far cache writes may lag a streamed scan (see _sink)."""
        self._root = Path(cache_dir)
        self._policy = policy or FetchPolicy()
        self._deadline = deadline
        self._min_rate = min_rate
        self._rate_window = rate_window
        self._retries = retries
        self._backoff = backoff
        self._through_slots = asyncio.Semaphore(max_concurrent)
        self._taps: weakref.WeakSet[StreamTap] = weakref.WeakSet()
        self._pool = ThreadPoolExecutor(2 * max_concurrent + 2, thread_name_prefix="layer")
        self._flights: Flights[Entry] = Flights(on_retire=self._evict)
        self._cache = BlobCache(
            self._root, max_bytes=max_cache_bytes, in_flight=self._flights, run=self._in_pool
        )
        self._downloader = Downloader(
            self._cache,
            run=self._in_pool,
            timeout=timeout,
            airgap=airgap,
            policy=self._policy,
            session=session,
            backlog=Backlog(write_behind_bytes),
        )

    @property
    def cached_bytes(self) -> int:
        return self._cache.total_bytes

    def cached_digests(self) -> list[str]:
        return self._cache.digests()

    async def fetch(self, layer: Layer) -> FetchedLayer:
        return await self._fetch(layer, None)

    async def fetch_through(self, layer: Layer, consume: Callable[[BinaryIO], T]) -> T:
        """`consume(blob)` in a thread, fed while the blob downloads when we download it.

        Overlapping download and scan is what makes indexing a new layer cost little more
        than reading it. The stream's end is only marked once the digest matched, so a
        consumer that read it all read verified bytes and its result stands at once, while
        the cache copy is still being written. If the stream was cut (a retried download) or
        never fed (the blob was cached or another download's), the consumer runs again on the
        verified file.
        """
        async with self._through_slots:
            tap = StreamTap()
            self._taps.add(tap)
            consumer: asyncio.Future[T] = asyncio.ensure_future(
                self._in_pool(_consume_tap, tap, consume)
            )
            fetching = asyncio.ensure_future(self._fetch(layer, tap))
            try:
                await asyncio.wait((consumer, fetching), return_when=asyncio.FIRST_COMPLETED)
                if consumer.done() and not consumer.cancelled() and not consumer.exception():
                    FETCH_REQUESTS.labels("downloaded").inc()
                    return consumer.result()
                fetched = await fetching
            except ConsumerGaveUp as gave_up:
                # A scan failed on the streamed bytes and stopped the download: ours says why.
                tap.abandon()
                try:
                    await consumer
                except TapBroken:  # we had joined the download another scan gave up on
                    raise FetchError(f"layer {layer.hash}: {gave_up}", client_error=True) from None
                raise FetchError(f"layer {layer.hash}: {gave_up}", client_error=True) from None
            except NotCached:
                # Our own stream, verified; only its cache copy was given up.
                try:
                    return await consumer
                except TapBroken:
                    fetched = await self._fetch(layer, None)
            except BaseException:
                tap.abandon()
                with contextlib.suppress(Exception):
                    await consumer
                raise
            finally:
                if not fetching.done():
                    fetching.cancel()  # the download itself is shielded: it lands for others
                fetching.add_done_callback(_release_fetched)
            with fetched:
                tap.fail("the blob came from the cache or another download")  # no-op once fed
                try:
                    return await consumer
                except TapBroken:
                    return await self._in_pool(_consume_file, fetched.path, consume)

    async def close(self) -> None:
        await self._flights.cancel_all()
        await self._downloader.close()
        for tap in list(self._taps):
            tap.abandon()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._cache.close()

    async def _in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs blocking work on the fetcher's own threads.

        A consumer blocks on its tap until the producer's next write, so both must never
        wait for the same small shared pool: with at most `max_concurrent` scans, each holding
        one consumer and at most one pending write, 2 * max_concurrent threads always suffice.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def _evict(self) -> None:
        self._cache.evict()

    async def _fetch(self, layer: Layer, tap: StreamTap | None) -> FetchedLayer:
        # Not the URI: registries sign layer URLs with tokens in the query string.
        with span("fetch layer", {"layer.digest": layer.hash}):
            return await self._fetch_or_share(layer, tap)

    async def _fetch_or_share(self, layer: Layer, tap: StreamTap | None) -> FetchedLayer:
        try:
            digest = parse_digest(layer.hash, "layer hash")
        except ModelError as exc:
            FETCH_REQUESTS.labels("error").inc()
            raise FetchError(str(exc), client_error=True) from exc
        own_tried = False
        while True:
            entry = self._cache.get(digest)
            if entry is not None:
                if not await self._cache.usable(entry):
                    continue
                FETCH_REQUESTS.labels("hit").inc()
                return self._cache.pin(entry)
            flight, started = self._flights.join(
                digest, layer.uri, functools.partial(self._download, layer, digest, tap)
            )
            result = "downloaded" if started else "shared"
            try:
                # Pinned before the flight retires, which may evict.
                fetched = await self._flights.wait(digest, flight, self._cache.pin)
            except NotCached:
                if started:
                    raise  # our tap had it all: fetch_through knows what to do
                continue  # the stream was another scan's and the file was not kept
            except Exception:
                if result == "shared" and flight.uri != layer.uri and not own_tried:
                    # Another manifest's URL failed; ours may well work: only success is shared.
                    own_tried = True
                    log.info("layer %s: shared download failed; trying %s", digest, layer.uri)
                    continue
                FETCH_REQUESTS.labels("error").inc()
                raise
            FETCH_REQUESTS.labels(result).inc()
            return fetched

    async def _download(self, layer: Layer, digest: str, tap: StreamTap | None) -> Entry:
        if not self._policy.enabled:
            return await self._download_bounded(layer, digest, tap)
        try:
            return await self._download_bounded(layer, digest, tap)
        except FetchError as exc:
            if "fetch policy" in str(exc) or not exc.client_error:
                raise
            # What the remote side answered (status, type, digest read) stays in our log: a
            # client must not learn what an address it named would have said.
            log.info("layer %s: %s", digest, exc)
            host = URL(layer.uri, encoded=True).host
            raise FetchError(
                f"layer {digest}: could not fetch it from {host!r}", client_error=True
            ) from None

    async def _download_bounded(self, layer: Layer, digest: str, tap: StreamTap | None) -> Entry:
        started = time.monotonic()
        deadline = asyncio.timeout(self._deadline)
        try:
            async with deadline:
                entry = await retrying(
                    functools.partial(self._downloader.attempt, layer, digest),
                    digest,
                    tap,
                    retries=self._retries,
                    backoff=self._backoff,
                    min_rate=self._min_rate,
                    rate_window=self._rate_window,
                )
        except TimeoutError:
            if not deadline.expired():
                raise
            message = (
                f"layer {digest}: download took longer than {self._deadline:g}s "
                "(indexer.layer_fetch_timeout)"
            )
            if tap is not None:
                tap.fail(message)
            raise FetchError(message, client_error=True) from None
        finally:
            FETCH_DURATION.observe(time.monotonic() - started)
        LAYER_SIZE.observe(entry.size)
        self._cache.add(entry)
        return entry


def _consume_tap(tap: StreamTap, consume: Callable[[BinaryIO], T]) -> T:
    stream = io.BufferedReader(tap, buffer_size=_CHUNK)
    try:
        result = consume(stream)
    except BaseException:
        tap.abandon(failed=True)
        raise
    try:
        while stream.read(_CHUNK):  # to the end, which is marked once the digest matched
            pass
    finally:
        tap.abandon()
    return result


def _release_fetched(fetching: asyncio.Future[FetchedLayer]) -> None:
    """A fetch nobody awaits any more: unpin what it landed, and read its failure."""
    if not fetching.cancelled() and fetching.exception() is None:
        fetching.result().release()


def _consume_file(path: Path, consume: Callable[[BinaryIO], T]) -> T:
    with path.open("rb") as blob:
        return consume(blob)
