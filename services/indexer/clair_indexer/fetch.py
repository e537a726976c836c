"""Layer download into a content-addressed disk cache, digest verified while streaming.

The fetcher stores the *compressed* blob under `<cache>/<algo>/<hex>`; `clair_indexer.layer`
decompresses and walks it.  A blob appears under its final name only after its digest matched.
Blobs are not fsynced on the indexing path (that cost more than the whole scan); instead a blob
found on disk at start-up is re-hashed on its first use, so one torn by a crash is re-fetched.
Concurrent fetches of one digest share a single download; callers pin what they use so the
size-bounded LRU eviction never removes a blob that is being read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import ipaddress
import logging
import os
import random
import socket
import tempfile
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Literal, Protocol, TypeVar

import aiohttp
from multidict import CIMultiDict
from prometheus_client import Counter, Gauge, Histogram
from yarl import URL

from clair_common.models import Layer, ModelError, parse_digest
from clair_common.progress import ByteCounter, TooSlow, at_least
from clair_common.tls import client_session
from clair_indexer._tap import ConsumerGaveUp, StreamTap, TapBroken
from clair_indexer.fetch_policy import FetchPolicy, PolicyRefused

Compression = Literal["gzip", "zstd", "none"]
T = TypeVar("T")

log = logging.getLogger(__name__)

FETCH_REQUESTS = Counter(
    "clair_fetcher_requests_total", "Layer fetches by outcome.", ["result"]
)  # result: hit (cache), shared (joined a running download), downloaded, error
LAYER_SIZE = Histogram(
    "clair_fetcher_layer_size_bytes",
    "Compressed size of downloaded layers.",
    buckets=[2**n for n in range(10, 34, 2)],
)
FETCH_DURATION = Histogram(
    "clair_fetcher_duration_seconds",
    "Wall time of layer downloads, retries included.",
    buckets=[0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
)
CACHE_ENTRIES = Gauge("clair_fetcher_cache_entries", "Layer blobs held in the disk cache.")

_CHUNK = 1 << 20
_MAX_REDIRECTS = 10
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Credentials the manifest gave for the registry; a redirect to storage elsewhere must not see them.
_CREDENTIAL_HEADERS = ("Authorization", "Cookie")
_BACKOFF_CAP = 10.0
_ALLOWED_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


class FetchError(Exception):
    """A layer could not be fetched; `client_error` is True when the manifest is at fault."""

    def __init__(self, message: str, *, client_error: bool = False) -> None:
        super().__init__(message)
        self.client_error = client_error


class AirgapError(FetchError):
    """`indexer.airgap` forbids the layer's host (it is neither loopback nor private)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, client_error=True)


class _Transient(Exception):
    """A failure worth retrying (connection trouble, timeout, 429, 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def sniff_compression(head: bytes) -> Compression:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "none"


def declared_compression(content_type: str) -> Compression | None:
    """Compression a response's Content-Type promises; None for generic types that promise nothing.

    The accepted list is claircore's (libindex/fetcher.go) plus Docker's foreign-layer type.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("", "text/plain", "application/octet-stream", "binary/octet-stream"):
        return None
    if media in ("application/gzip", "application/x-gzip") or media.endswith(
        (".tar+gzip", ".tar.gzip")
    ):
        return "gzip"
    if media == "application/zstd" or media.endswith(".tar+zstd"):
        return "zstd"
    if media == "application/x-tar" or media.endswith(".tar"):
        return "none"
    raise FetchError(f"unknown content-type {media!r}", client_error=True)


def is_private_address(address: str) -> bool:
    """Loopback, RFC 1918, RFC 4193 or link-local: the only destinations airgap mode allows."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in _ALLOWED_NETWORKS)


class FetchedLayer:
    """A verified compressed blob in the cache, pinned until `release()` or `with` block exit."""

    __slots__ = ("_entry", "_fetcher", "_released", "compression", "digest", "path", "size")

    def __init__(self, fetcher: LayerFetcher, entry: _Entry) -> None:
        self._fetcher = fetcher
        self._entry = entry
        self._released = False
        self.digest = entry.digest
        self.path = entry.path
        self.size = entry.size
        self.compression: Compression = entry.compression

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._fetcher._unpin(self._entry)

    def __enter__(self) -> FetchedLayer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


@dataclass(slots=True, eq=False)
class _Entry:
    digest: str
    path: Path
    size: int
    verified: bool
    compression: Compression
    refs: int = 0


@dataclass(slots=True, eq=False)
class _Flight:
    task: asyncio.Task[_Entry]
    uri: str
    waiters: int = 0


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
    ) -> None:
        """`deadline`: seconds one layer's download may take, retries included (None: no
        limit); `min_rate`: bytes/s a download must keep up over each `rate_window` seconds,
        waiting for the response included (0: no floor). Both fail as the client's fault."""
        self._root = Path(cache_dir)
        self._policy = policy or FetchPolicy()
        self._deadline = deadline
        self._min_rate = min_rate
        self._rate_window = rate_window
        self._through_slots = asyncio.Semaphore(max_concurrent)
        self._taps: weakref.WeakSet[StreamTap] = weakref.WeakSet()
        self._pool = ThreadPoolExecutor(2 * max_concurrent + 2, thread_name_prefix="layer")
        self._max_bytes = max_cache_bytes
        self._airgap = airgap
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._retries = retries
        self._backoff = backoff
        self._session = session
        self._own_session = session is None
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._flights: dict[str, _Flight] = {}
        self._total_bytes = 0
        self._load_cache()

    @property
    def cached_bytes(self) -> int:
        return self._total_bytes

    def cached_digests(self) -> list[str]:
        return list(self._entries)

    async def fetch(self, layer: Layer) -> FetchedLayer:
        return await self._fetch(layer, None)

    async def fetch_through(self, layer: Layer, consume: Callable[[BinaryIO], T]) -> T:
        """`consume(blob)` in a thread, fed while the blob downloads when we download it.

        Overlapping download and scan is what makes indexing a new layer cost little more
        than reading it. The result only counts once the digest matched; if the stream was
        cut (a retried download) the consumer is run again on the verified cached file.
        """
        async with self._through_slots:
            tap = StreamTap()
            self._taps.add(tap)
            consumer: asyncio.Future[T] = asyncio.ensure_future(
                self._in_pool(_consume_tap, tap, consume)
            )
            try:
                fetched = await self._fetch(layer, tap)
            except ConsumerGaveUp as gave_up:
                # A scan failed on the streamed bytes and stopped the download: ours says why.
                tap.abandon()
                try:
                    await consumer
                except TapBroken:  # we had joined the download another scan gave up on
                    raise FetchError(f"layer {layer.hash}: {gave_up}", client_error=True) from None
                raise FetchError(f"layer {layer.hash}: {gave_up}", client_error=True) from None
            except BaseException:
                tap.abandon()
                with contextlib.suppress(Exception):
                    await consumer
                raise
            with fetched:
                tap.fail("the blob came from the cache or another download")  # no-op once fed
                try:
                    return await consumer
                except TapBroken:
                    return await self._in_pool(_consume_file, fetched.path, consume)

    async def _in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs blocking work on the fetcher's own threads.

        A consumer blocks on its tap until the producer's next write, so both must never
        wait for the same small shared pool: with at most `max_concurrent` scans, each holding
        one consumer and at most one pending write, 2 * max_concurrent threads always suffice.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def _fetch(self, layer: Layer, tap: StreamTap | None) -> FetchedLayer:
        try:
            digest = parse_digest(layer.hash, "layer hash")
        except ModelError as exc:
            FETCH_REQUESTS.labels("error").inc()
            raise FetchError(str(exc), client_error=True) from exc
        own_tried = False
        while True:
            entry = self._entries.get(digest)
            if entry is not None:
                try:
                    os.utime(entry.path)  # the on-disk LRU order survives restarts
                except FileNotFoundError:
                    log.warning("cached layer %s vanished from disk; fetching again", digest)
                    self._forget(entry)
                    continue
                if not entry.verified and not await self._reverify(entry):
                    continue
                FETCH_REQUESTS.labels("hit").inc()
                return self._pin(entry)
            flight = self._flights.get(digest)
            if flight is None:
                task = asyncio.create_task(self._download(layer, digest, tap))
                flight = _Flight(task, layer.uri)
                self._flights[digest] = flight
                flight.task.add_done_callback(functools.partial(self._landed, digest, flight))
                result = "downloaded"
            else:
                result = "shared"
            flight.waiters += 1
            try:
                # Shielded: one caller giving up must not abort the download the others await.
                entry = await asyncio.shield(flight.task)
                fetched = self._pin(entry)  # before retiring the flight, which may evict
            except Exception:
                if result == "shared" and flight.uri != layer.uri and not own_tried:
                    # Another manifest's URL failed; ours may well work: only success is shared.
                    own_tried = True
                    log.info("layer %s: shared download failed; trying %s", digest, layer.uri)
                    continue
                FETCH_REQUESTS.labels("error").inc()
                raise
            finally:
                flight.waiters -= 1
                if flight.waiters == 0 and flight.task.done():
                    self._retire(digest, flight)
            FETCH_REQUESTS.labels(result).inc()
            return fetched

    async def close(self) -> None:
        flights = list(self._flights.values())
        for flight in flights:
            flight.task.cancel()
        await asyncio.gather(*(f.task for f in flights), return_exceptions=True)
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None
        for tap in list(self._taps):
            tap.abandon()
        self._pool.shutdown(wait=False, cancel_futures=True)
        CACHE_ENTRIES.dec(len(self._entries))  # the files stay for the next start
        self._entries.clear()
        self._total_bytes = 0

    async def _reverify(self, entry: _Entry) -> bool:
        """Hashes a blob left by an earlier process; drops it when a crash tore it."""
        entry.refs += 1  # nobody may evict it while we read it
        try:
            ok = await self._in_pool(_file_matches, entry.path, entry.digest)
        finally:
            entry.refs -= 1
        if ok:
            entry.verified = True
            return True
        log.warning("cached layer %s failed its digest check; fetching again", entry.digest)
        self._forget(entry)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
        return False

    # -- cache bookkeeping ------------------------------------------------------------------

    def _load_cache(self) -> None:
        found: list[tuple[float, _Entry]] = []
        for algo in ("sha256", "sha512"):
            folder = self._root / algo
            folder.mkdir(parents=True, exist_ok=True)
            for item in os.scandir(folder):
                if item.name.startswith(".tmp-"):  # left by a crash mid-download
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(item.path)
                    continue
                digest = f"{algo}:{item.name}"
                try:
                    parse_digest(digest)
                    stat = item.stat()
                    with open(item.path, "rb") as blob:
                        compression = sniff_compression(blob.read(4))
                except (ModelError, OSError):
                    continue
                found.append(
                    (
                        stat.st_mtime,
                        _Entry(digest, Path(item.path), stat.st_size, False, compression),
                    )
                )
        for _, entry in sorted(found, key=lambda pair: pair[0]):
            self._add(entry)
        self._evict()

    def _add(self, entry: _Entry) -> None:
        self._entries[entry.digest] = entry
        self._total_bytes += entry.size
        CACHE_ENTRIES.inc()

    def _forget(self, entry: _Entry) -> None:
        if self._entries.get(entry.digest) is entry:
            del self._entries[entry.digest]
            self._total_bytes -= entry.size
            CACHE_ENTRIES.dec()

    def _pin(self, entry: _Entry) -> FetchedLayer:
        entry.refs += 1
        if self._entries.get(entry.digest) is entry:
            self._entries.move_to_end(entry.digest)
        return FetchedLayer(self, entry)

    def _unpin(self, entry: _Entry) -> None:
        entry.refs -= 1
        if entry.refs == 0:
            self._evict()

    def _landed(self, digest: str, flight: _Flight, _task: object) -> None:
        failed = flight.task.cancelled() or flight.task.exception() is not None
        if flight.waiters == 0 or failed:
            # A failed flight is never joined again: the next fetch downloads afresh.
            self._retire(digest, flight)

    def _retire(self, digest: str, flight: _Flight) -> None:
        # Until every waiter has pinned the new blob, its flight protects it from eviction.
        if self._flights.get(digest) is flight:
            del self._flights[digest]
            self._evict()

    def _evict(self) -> None:
        if self._total_bytes <= self._max_bytes:
            return
        for entry in list(self._entries.values()):
            if self._total_bytes <= self._max_bytes:
                break
            if entry.refs > 0 or entry.digest in self._flights:
                continue
            self._forget(entry)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
            log.debug("evicted layer %s (%d bytes)", entry.digest, entry.size)

    # -- download ---------------------------------------------------------------------------

    async def _download(self, layer: Layer, digest: str, tap: StreamTap | None) -> _Entry:
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

    async def _download_bounded(self, layer: Layer, digest: str, tap: StreamTap | None) -> _Entry:
        started = time.monotonic()
        deadline = asyncio.timeout(self._deadline)
        try:
            async with deadline:
                entry = await self._download_retrying(layer, digest, tap)
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
        self._add(entry)
        return entry

    async def _download_retrying(self, layer: Layer, digest: str, tap: StreamTap | None) -> _Entry:
        attempt = 0
        try:
            while True:
                counter = ByteCounter()
                try:
                    return await at_least(
                        self._attempt(layer, digest, tap, counter),
                        counter,
                        self._min_rate,
                        self._rate_window,
                    )
                except TooSlow as exc:
                    raise FetchError(
                        f"layer {digest}: host {exc} (indexer.layer_min_rate)", client_error=True
                    ) from None
                except _Transient as exc:
                    if tap is not None:
                        tap.fail(f"download interrupted: {exc}")
                        tap = None
                    if attempt >= self._retries:
                        # The manifest named a host that does not answer well: its problem.
                        raise FetchError(
                            f"layer {digest}: {exc} (gave up after {attempt + 1} attempts)",
                            client_error=True,
                        ) from exc
                    delay = min(_BACKOFF_CAP, self._backoff * 2**attempt)
                    delay = delay * random.uniform(0.5, 1.0)
                    if exc.retry_after is not None:
                        delay = min(_BACKOFF_CAP, max(delay, exc.retry_after))
                    log.info("layer %s: %s; retrying in %.2fs", digest, exc, delay)
                    await asyncio.sleep(delay)
                    attempt += 1
        except BaseException as exc:
            if tap is not None:
                tap.fail(f"download failed: {exc}")
            raise

    async def _attempt(
        self, layer: Layer, digest: str, tap: StreamTap | None, counter: ByteCounter
    ) -> _Entry:
        session = self._client()
        headers: CIMultiDict[str] = CIMultiDict()
        for name, values in layer.headers.items():
            for value in values:
                headers.add(name, value)
        headers.setdefault("Accept-Encoding", "identity")  # we hash the bytes as stored
        url = self._parse_url(layer.uri, digest)
        for _ in range(_MAX_REDIRECTS + 1):
            if self._airgap:
                await self._check_airgap(url, digest)
            try:
                await self._policy.check(url)  # every hop: redirects cannot lead around it
            except PolicyRefused as exc:
                raise FetchError(f"layer {digest}: {exc}", client_error=True) from None
            try:
                async with session.get(
                    url,
                    headers=headers,
                    allow_redirects=False,
                    auto_decompress=False,
                    timeout=self._timeout,
                ) as resp:
                    if resp.status in _REDIRECT_STATUSES and "Location" in resp.headers:
                        target = self._redirect_target(url, resp.headers["Location"], digest)
                        if (target.host or "").lower() != (url.host or "").lower():
                            for name in _CREDENTIAL_HEADERS:
                                headers.popall(name, None)
                        url = target
                        continue
                    if resp.status == 200:
                        return await self._save(resp, digest, tap, counter)
                    if resp.status == 429 or resp.status >= 500:
                        raise _Transient(
                            f"GET {url}: status {resp.status}",
                            _retry_after(resp.headers.get("Retry-After")),
                        )
                    raise FetchError(
                        f"layer {digest}: GET {url}: unexpected status {resp.status}",
                        client_error=400 <= resp.status < 500,
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _Transient(f"GET {url}: {type(exc).__name__}: {exc}") from exc
            except OSError as exc:
                raise FetchError(f"layer {digest}: caching the blob: {exc}") from exc
        raise FetchError(
            f"layer {digest}: more than {_MAX_REDIRECTS} redirects from {layer.uri}",
            client_error=True,
        )

    def _redirect_target(self, url: URL, location: str, digest: str) -> URL:
        try:
            joined = str(url.join(URL(location, encoded=True)))
        except (TypeError, ValueError) as exc:
            raise FetchError(
                f"layer {digest}: invalid redirect location from {url.host}", client_error=True
            ) from exc
        return self._parse_url(joined, digest)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = client_session(
                timeout=self._timeout, headers={"User-Agent": "clair-py-indexer"}
            )
        return self._session

    @staticmethod
    def _parse_url(uri: str, digest: str) -> URL:
        try:
            url = URL(uri, encoded=True)  # sent as given: presigned URLs must stay byte-exact
        except (TypeError, ValueError) as exc:
            raise FetchError(f"layer {digest}: invalid uri {uri!r}", client_error=True) from exc
        if url.scheme not in ("http", "https"):
            raise FetchError(
                f"layer {digest}: unsupported scheme {url.scheme!r} in {uri!r}", client_error=True
            )
        if not url.host:
            raise FetchError(f"layer {digest}: no host in uri {uri!r}", client_error=True)
        return url

    async def _check_airgap(self, url: URL, digest: str) -> None:
        host = url.host or ""
        try:
            addresses = [ipaddress.ip_address(host).compressed]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise _Transient(f"resolving {host!r}: {exc}") from exc
            addresses = [str(info[4][0]) for info in infos]
        public = [a for a in addresses if not is_private_address(a)]
        if public or not addresses:
            raise AirgapError(
                f"layer {digest}: airgap mode refuses {host!r} "
                f"(not loopback/private: {', '.join(public) or 'no address'})"
            )

    async def _save(
        self,
        resp: aiohttp.ClientResponse,
        digest: str,
        tap: StreamTap | None,
        counter: ByteCounter,
    ) -> _Entry:
        algo = digest.split(":", 1)[0]
        folder = self._root / algo
        folder.mkdir(parents=True, exist_ok=True)
        declared = _declared_or_error(resp.headers.get("Content-Type", ""), digest)
        hasher = hashlib.new(algo)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        size, head, pending_len = 0, b"", 0
        pending: list[bytes] = []
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in resp.content.iter_any():
                    counter.received += len(chunk)
                    if len(head) < 4:
                        head += chunk[: 4 - len(head)]
                        if len(head) == 4:
                            _check_compression(declared, head, digest)
                    pending.append(chunk)
                    pending_len += len(chunk)
                    if pending_len >= _CHUNK:
                        # Hashing and writing off the loop: hashlib drops the GIL on big buffers.
                        await self._in_pool(_write, out, hasher, b"".join(pending), tap)
                        size += pending_len
                        pending, pending_len = [], 0
                if len(head) < 4:
                    _check_compression(declared, head, digest)
                await self._in_pool(_write, out, hasher, b"".join(pending), tap)
                size += pending_len
            if tap is not None:
                tap.finish()
            got = f"{algo}:{hasher.hexdigest()}"
            if got != digest:
                raise FetchError(f"layer {digest}: digest mismatch: got {got}", client_error=True)
            final = folder / digest.split(":", 1)[1]
            os.replace(tmp_name, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return _Entry(digest, final, size, True, sniff_compression(head))


def _declared_or_error(content_type: str, digest: str) -> Compression | None:
    try:
        return declared_compression(content_type)
    except FetchError as exc:
        raise FetchError(f"layer {digest}: {exc}", client_error=True) from None


def _check_compression(declared: Compression | None, head: bytes, digest: str) -> None:
    sniffed = sniff_compression(head)
    if declared is not None and sniffed != declared:
        raise FetchError(
            f"layer {digest}: content-type promises {declared} but the blob is {sniffed}",
            client_error=True,
        )


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _write(out: IO[bytes], hasher: _Hasher, data: bytes, tap: StreamTap | None) -> None:
    hasher.update(data)
    if tap is not None:
        tap.feed(data)
    out.write(data)


def _file_matches(path: Path, digest: str) -> bool:
    algo, _, expected = digest.partition(":")
    hasher = hashlib.new(algo)
    with path.open("rb") as blob:
        while chunk := blob.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest() == expected


def _consume_tap(tap: StreamTap, consume: Callable[[BinaryIO], T]) -> T:
    try:
        result = consume(io.BufferedReader(tap, buffer_size=_CHUNK))
    except BaseException:
        tap.abandon(failed=True)
        raise
    tap.abandon()
    return result


def _consume_file(path: Path, consume: Callable[[BinaryIO], T]) -> T:
    with path.open("rb") as blob:
        return consume(blob)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # the HTTP-date form is not worth parsing for a capped backoff
