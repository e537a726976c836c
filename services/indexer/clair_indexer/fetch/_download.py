"""One download attempt: a GET that follows redirects under the airgap and fetch-policy checks,
streaming the body into the cache folder while hashing it (and feeding a scan's tap, whose
cache copy is written behind it: see _sink)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from typing import Protocol

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from clair_common.models import Layer
from clair_common.progress import ByteCounter
from clair_common.tls import client_session
from clair_indexer._tap import StreamTap
from clair_indexer.fetch._airgap import check_airgap
from clair_indexer.fetch._cache import BlobCache, Entry, Runner
from clair_indexer.fetch._errors import FetchError, NotCached, Transient
from clair_indexer.fetch._media import check_compression, declared_or_error, sniff_compression
from clair_indexer.fetch._policy import FetchPolicy, PolicyRefused
from clair_indexer.fetch._retry import retry_after
from clair_indexer.fetch._sink import Backlog, DirectWrite, Sink, WriteBehind

_CHUNK = 1 << 20
_MAX_REDIRECTS = 10
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Credentials the manifest gave for the registry; a redirect to storage elsewhere must not see them.
_CREDENTIAL_HEADERS = ("Authorization", "Cookie")


class Downloader:
    def __init__(
        self,
        cache: BlobCache,
        *,
        run: Runner,
        timeout: float,
        airgap: bool,
        policy: FetchPolicy,
        session: aiohttp.ClientSession | None,
        backlog: Backlog,
    ) -> None:
        self._cache = cache
        self._run = run
        self._airgap = airgap
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._session = session
        self._own_session = session is None
        self._backlog = backlog

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def attempt(
        self, layer: Layer, digest: str, tap: StreamTap | None, counter: ByteCounter
    ) -> Entry:
        session = self._client()
        headers: CIMultiDict[str] = CIMultiDict()
        for name, values in layer.headers.items():
            for value in values:
                headers.add(name, value)
        headers.setdefault("Accept-Encoding", "identity")  # we hash the bytes as stored
        url = _parse_url(layer.uri, digest)
        for _ in range(_MAX_REDIRECTS + 1):
            if self._airgap:
                await check_airgap(url, digest)
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
                        target = _redirect_target(url, resp.headers["Location"], digest)
                        if (target.host or "").lower() != (url.host or "").lower():
                            for name in _CREDENTIAL_HEADERS:
                                headers.popall(name, None)
                        url = target
                        continue
                    if resp.status == 200:
                        return await self._save(resp, digest, tap, counter)
                    if resp.status == 429 or resp.status >= 500:
                        raise Transient(
                            f"GET {url}: status {resp.status}",
                            retry_after(resp.headers.get("Retry-After")),
                        )
                    raise FetchError(
                        f"layer {digest}: GET {url}: unexpected status {resp.status}",
                        client_error=400 <= resp.status < 500,
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise Transient(f"GET {url}: {type(exc).__name__}: {exc}") from exc
            except OSError as exc:
                raise FetchError(f"layer {digest}: caching the blob: {exc}") from exc
        raise FetchError(
            f"layer {digest}: more than {_MAX_REDIRECTS} redirects from {layer.uri}",
            client_error=True,
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = client_session(
                timeout=self._timeout, headers={"User-Agent": "clair-py-indexer"}
            )
        return self._session

    async def _save(
        self,
        resp: aiohttp.ClientResponse,
        digest: str,
        tap: StreamTap | None,
        counter: ByteCounter,
    ) -> Entry:
        algo = digest.split(":", 1)[0]
        folder = self._cache.folder(algo)
        declared = declared_or_error(resp.headers.get("Content-Type", ""), digest)
        hasher = hashlib.new(algo)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        sink: Sink
        try:
            sink = DirectWrite(fd) if tap is None else WriteBehind(fd, self._backlog, digest)
        except BaseException:
            os.close(fd)
            os.unlink(tmp_name)
            raise
        size, head, pending_len = 0, b"", 0
        pending: list[bytes] = []
        try:
            async for chunk in resp.content.iter_any():
                counter.received += len(chunk)
                if len(head) < 4:
                    head += chunk[: 4 - len(head)]
                    if len(head) == 4:
                        check_compression(declared, head, digest)
                pending.append(chunk)
                pending_len += len(chunk)
                if pending_len >= _CHUNK:
                    # Hashing and writing off the loop: hashlib drops the GIL on big buffers.
                    await self._run(_take, hasher, b"".join(pending), tap, sink)
                    size += pending_len
                    pending, pending_len = [], 0
            if len(head) < 4:
                check_compression(declared, head, digest)
            await self._run(_take, hasher, b"".join(pending), tap, sink)
            size += pending_len
            got = f"{algo}:{hasher.hexdigest()}"
            if got != digest:
                raise FetchError(f"layer {digest}: digest mismatch: got {got}", client_error=True)
            if tap is not None:
                tap.finish()  # only now: a scan that read to the end read verified bytes
            if not await self._run(sink.close):
                raise NotCached(digest)
            final = folder / digest.split(":", 1)[1]
            os.replace(tmp_name, final)
        except BaseException:
            sink.abort()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return Entry(digest, final, size, True, sniff_compression(head))


def _redirect_target(url: URL, location: str, digest: str) -> URL:
    try:
        joined = str(url.join(URL(location, encoded=True)))
    except (TypeError, ValueError) as exc:
        raise FetchError(
            f"layer {digest}: invalid redirect location from {url.host}", client_error=True
        ) from exc
    return _parse_url(joined, digest)


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


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _take(hasher: _Hasher, data: bytes, tap: StreamTap | None, sink: Sink) -> None:
    hasher.update(data)
    if tap is not None:
        tap.feed(data)
    sink.write(data)
