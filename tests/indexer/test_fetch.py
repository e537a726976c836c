"""LayerFetcher against a real registry and small local HTTP origins that misbehave on purpose."""

from __future__ import annotations

import asyncio
import io
import random
import tarfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy
from prometheus_client import REGISTRY

from clair_common.models import Layer
from clair_indexer.fetch import (
    AirgapError,
    FetchedLayer,
    FetchError,
    LayerFetcher,
    declared_compression,
    is_private_address,
)
from tests.fixtures.images import (
    OPAQUE,
    WHITEOUT,
    Entry,
    Hardlink,
    Mode,
    Symlink,
    build_layer,
    decompress,
    layer_from_dir,
    sha256_digest,
)
from tests.fixtures.registry import LocalRegistry, registry  # noqa: F401

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MiB = 1 << 20


@dataclass
class Origin:
    """A loopback HTTP server; `requests` records the headers of every request it saw."""

    base_url: str
    requests: list[CIMultiDictProxy[str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # as sent, query included

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


StartOrigin = Callable[..., Awaitable[Origin]]


@pytest.fixture
async def serve() -> AsyncIterator[StartOrigin]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, host: str = "127.0.0.1") -> Origin:
        origin = Origin("")

        async def counted(request: web.Request) -> web.StreamResponse:
            origin.requests.append(request.headers)
            origin.paths.append(request.raw_path)
            return await handler(request)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", counted)
        runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = runner.addresses[0][1]
        origin.base_url = f"http://{host}:{port}"
        return origin

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def make_fetcher(tmp_path: Path) -> AsyncIterator[Callable[..., LayerFetcher]]:
    fetchers: list[LayerFetcher] = []

    def make(**options: Any) -> LayerFetcher:
        options.setdefault("max_cache_bytes", 64 * MiB)
        options.setdefault("timeout", 2.0)
        options.setdefault("backoff", 0.01)
        fetcher = LayerFetcher(tmp_path / "cache", **options)
        fetchers.append(fetcher)
        return fetcher

    yield make
    for fetcher in fetchers:
        await fetcher.close()


def blob_of(size: int, seed: int = 0) -> bytes:
    """A gzip layer of roughly `size` bytes (random content does not compress)."""
    payload = random.Random(seed).randbytes(size)
    return build_layer({f"data/{seed}": payload})


def serve_bytes(blob: bytes, content_type: str = "application/octet-stream") -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(body=blob, content_type=content_type)

    return handler


def metric(result: str) -> float:
    return REGISTRY.get_sample_value("clair_fetcher_requests_total", {"result": result}) or 0.0


def temp_files(cache: Path) -> list[Path]:
    return list(cache.rglob(".tmp-*"))


# -- against the real registry ---------------------------------------------------------------


async def test_fetches_gzip_and_zstd_layers(
    registry: LocalRegistry,  # noqa: F811
    make_fetcher: Callable[..., LayerFetcher],
    shared_data: Path,
) -> None:
    debian = shared_data / "layers" / "debian-12-bookworm-minbase-debootstrap"
    gzip_layer = layer_from_dir(
        debian, "gzip", extra={"etc/os-release": Symlink("../usr/lib/os-release")}
    )
    zstd_layer = build_layer({"etc/apt/sources.list": b"deb x y z\n", "tmp/a": WHITEOUT}, "zstd")
    manifest = await registry.push_image("fetch/mixed", [gzip_layer, zstd_layer])
    fetcher = make_fetcher()

    for layer, blob, kind in zip(
        manifest.layers, [gzip_layer, zstd_layer], ["gzip", "zstd"], strict=True
    ):
        with await fetcher.fetch(layer) as fetched:
            assert fetched.compression == kind
            assert fetched.size == len(blob)
            assert fetched.path.read_bytes() == blob
            algo, hexdigest = layer.hash.split(":")
            assert fetched.path == fetcher_root(fetcher) / algo / hexdigest


def fetcher_root(fetcher: LayerFetcher) -> Path:
    return fetcher._root


async def test_cached_blob_is_reused_without_network(
    registry: LocalRegistry,  # noqa: F811
    make_fetcher: Callable[..., LayerFetcher],
) -> None:
    blob = build_layer({"etc/hostname": b"cache-test\n"})
    manifest = await registry.push_image("fetch/cache", [blob])
    layer = manifest.layers[0]
    fetcher = make_fetcher()
    with await fetcher.fetch(layer) as first:
        pass

    registry.blob_data_path(layer.hash).unlink()
    async with aiohttp.ClientSession() as session, session.get(layer.uri) as resp:
        assert resp.status != 200, "the registry must have lost the blob"

    hits = metric("hit")
    with await fetcher.fetch(layer) as again:
        assert again.path == first.path
        assert again.path.read_bytes() == blob
    assert metric("hit") == hits + 1
    # A restarted fetcher trusts what it finds under a digest's final name.
    with await make_fetcher().fetch(layer) as restarted:
        assert restarted.path.read_bytes() == blob
        assert restarted.compression == "gzip"


async def test_digest_mismatch_names_both_digests(
    registry: LocalRegistry,  # noqa: F811
    make_fetcher: Callable[..., LayerFetcher],
) -> None:
    blob = build_layer({"a": b"1"})
    manifest = await registry.push_image("fetch/mismatch", [blob])
    claimed = sha256_digest(b"something else")
    fetcher = make_fetcher()
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(Layer(claimed, manifest.layers[0].uri))
    assert str(info.value) == f"layer {claimed}: digest mismatch: got {sha256_digest(blob)}"
    assert info.value.client_error
    assert fetcher.cached_digests() == []
    assert temp_files(fetcher_root(fetcher)) == []


async def test_missing_blob_is_a_client_error(
    registry: LocalRegistry,  # noqa: F811
    make_fetcher: Callable[..., LayerFetcher],
) -> None:
    digest = sha256_digest(b"never pushed")
    uri = registry.blob_url("fetch/missing", digest)
    with pytest.raises(FetchError, match="404") as info:
        await make_fetcher().fetch(Layer(digest, uri))
    assert uri in str(info.value)
    assert info.value.client_error


async def test_airgap_allows_loopback_registry(
    registry: LocalRegistry,  # noqa: F811
    make_fetcher: Callable[..., LayerFetcher],
) -> None:
    blob = build_layer({"b": b"2"})
    manifest = await registry.push_image("fetch/airgap", [blob])
    with await make_fetcher(airgap=True).fetch(manifest.layers[0]) as fetched:
        assert fetched.path.read_bytes() == blob


# -- input validation and airgap -------------------------------------------------------------


@pytest.mark.parametrize("uri", ["ftp://127.0.0.1/blob", "file:///etc/passwd", "s3://bucket/key"])
async def test_unsupported_scheme(make_fetcher: Callable[..., LayerFetcher], uri: str) -> None:
    with pytest.raises(FetchError, match="unsupported scheme") as info:
        await make_fetcher().fetch(Layer(sha256_digest(b"x"), uri))
    assert info.value.client_error


async def test_invalid_digest_is_a_client_error(make_fetcher: Callable[..., LayerFetcher]) -> None:
    with pytest.raises(FetchError, match="invalid digest") as info:
        await make_fetcher().fetch(Layer("md5:abcd", "http://127.0.0.1/blob"))
    assert info.value.client_error


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("10.20.30.40", True),
        ("172.31.255.1", True),
        ("192.168.1.1", True),
        ("169.254.10.10", True),
        ("::1", True),
        ("fd12:3456::1", True),
        ("fe80::1", True),
        ("::ffff:10.0.0.1", True),
        ("8.8.8.8", False),
        ("172.32.0.1", False),
        ("100.64.0.1", False),
        ("2001:4860:4860::8888", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_private_address_ranges(address: str, allowed: bool) -> None:
    assert is_private_address(address) is allowed


def connection_tracer() -> tuple[aiohttp.TraceConfig, list[str]]:
    """Records every request and connection attempt a session makes."""
    events: list[str] = []
    trace = aiohttp.TraceConfig()

    async def on_request(_: aiohttp.ClientSession, __: SimpleNamespace, params: Any) -> None:
        events.append(f"request {params.url}")

    async def on_connect(_: aiohttp.ClientSession, __: SimpleNamespace, ___: Any) -> None:
        events.append("connect")

    trace.on_request_start.append(on_request)
    trace.on_connection_create_start.append(on_connect)
    return trace, events


async def test_airgap_refuses_public_host_before_connecting(
    make_fetcher: Callable[..., LayerFetcher], serve: StartOrigin
) -> None:
    trace, events = connection_tracer()
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        fetcher = make_fetcher(airgap=True, session=session)
        with pytest.raises(AirgapError, match=r"8\.8\.8\.8") as info:
            await fetcher.fetch(Layer(sha256_digest(b"x"), "http://8.8.8.8/v2/r/blobs/x"))
        assert info.value.client_error
        assert events == []

        # A redirect hop is checked too: one request to the loopback origin, none beyond.
        async def redirect(_: web.Request) -> web.StreamResponse:
            raise web.HTTPFound("http://8.8.4.4:8080/blob")

        origin = await serve(redirect)
        with pytest.raises(AirgapError, match=r"8\.8\.4\.4"):
            await fetcher.fetch(Layer(sha256_digest(b"y"), origin.url("/start")))
        assert [e for e in events if e.startswith("request")] == [f"request {origin.url('/start')}"]


async def test_airgap_resolves_host_names(
    make_fetcher: Callable[..., LayerFetcher], serve: StartOrigin
) -> None:
    blob = build_layer({"c": b"3"})
    origin = await serve(serve_bytes(blob))
    uri = origin.url("/blob").replace("127.0.0.1", "localhost")
    with await make_fetcher(airgap=True).fetch(Layer(sha256_digest(blob), uri)) as fetched:
        assert fetched.size == len(blob)


# -- HTTP behaviour against local origins ----------------------------------------------------


async def test_concurrent_fetches_share_one_download(
    make_fetcher: Callable[..., LayerFetcher], serve: StartOrigin
) -> None:
    blob = blob_of(3 * MiB)
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(body=blob, content_type="application/octet-stream")

    origin = await serve(slow)
    layer = Layer(sha256_digest(blob), origin.url("/blob"))
    fetcher = make_fetcher()
    tasks = [asyncio.create_task(fetcher.fetch(layer)) for _ in range(6)]
    await asyncio.sleep(0.05)
    tasks[0].cancel()  # one caller giving up must not abort the shared download
    release.set()
    results = await asyncio.gather(*tasks[1:])
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert len(origin.requests) == 1
    assert {r.path for r in results} == {results[0].path}
    assert results[0].path.read_bytes() == blob
    for fetched in results:
        fetched.release()


@pytest.mark.timeout(20)
async def test_stalled_body_times_out(
    make_fetcher: Callable[..., LayerFetcher], serve: StartOrigin
) -> None:
    blob = blob_of(256 * 1024, seed=1)

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(len(blob))})
        await resp.prepare(request)
        await resp.write(blob[:1000])
        await asyncio.sleep(3600)
        return resp

    origin = await serve(stall)
    fetcher = make_fetcher(timeout=0.3, retries=1)
    started = time.monotonic()
    with pytest.raises(FetchError, match="gave up after 2 attempts") as info:
        await fetcher.fetch(Layer(sha256_digest(blob), origin.url("/blob")))
    assert time.monotonic() - started < 3
    assert info.value.client_error  # the host the manifest named is at fault, not the indexer
    assert len(origin.requests) == 2
    assert temp_files(fetcher_root(fetcher)) == []


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (429, "0"), (500, None)])
async def test_transient_status_is_retried(
    make_fetcher: Callable[..., LayerFetcher],
    serve: StartOrigin,
    status: int,
    retry_after: str | None,
) -> None:
    blob = build_layer({"d": b"4"})
    calls = 0

    async def flaky(_: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            headers = {"Retry-After": retry_after} if retry_after else None
            return web.Response(status=status, headers=headers)
        return web.Response(body=blob)

    origin = await serve(flaky)
    with await make_fetcher().fetch(Layer(sha256_digest(blob), origin.url("/b"))) as fetched:
        assert fetched.path.read_bytes() == blob
    assert calls == 2


async def test_client_status_fails_without_retry(
    make_fetcher: Callable[..., LayerFetcher], serve: StartOrigin
) -> None:
    async def forbidden(_: web.Request) -> web.StreamResponse:
        return web.Response(status=403)

    origin = await serve(forbidden)
    with pytest.raises(FetchError, match="unexpected status 403") as info:
        await make_fetcher().fetch(Layer(sha256_digest(b"z"), origin.url("/b")))
    assert info.value.client_error
    assert len(origin.requests) == 1


async def test_server_errors_give_up_after_retries(
    make_fetcher: Callable[..., LayerFetcher], serve: StartOrigin
) -> None:
    async def broken(_: web.Request) -> web.StreamResponse:
        return web.Response(status=502)

    origin = await serve(broken)
    with pytest.raises(FetchError, match="status 502") as info:
        await make_fetcher(retries=2).fetch(Layer(sha256_digest(b"z"), origin.url("/b")))
    assert info.value.client_error  # the layer host's failure: 400, not the indexer's 500
    assert len(origin.requests) == 3


@pytest.mark.parametrize(
    ("content_type", "compression", "ok"),
    [
        ("application/vnd.oci.image.layer.v1.tar+gzip", "gzip", True),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip", True),
        ("application/x-gzip", "gzip", True),
        ("application/vnd.oci.image.layer.v1.tar+zstd", "zstd", True),
        ("application/vnd.oci.image.layer.v1.tar", "none", True),
        ("binary/octet-stream", "zstd", True),
        ("text/plain; charset=utf-8", "none", True),
        ("application/vnd.oci.image.layer.v1.tar+zstd", "gzip", False),
        ("application/x-tar", "gzip", False),
        ("text/html", "gzip", False),
    ],
)
async def test_content_type_must_agree_with_bytes(
    make_fetcher: Callable[..., LayerFetcher],
    serve: StartOrigin,
    content_type: str,
    compression: Any,
    ok: bool,
) -> None:
    blob = build_layer({"e": b"5"}, compression)

    async def typed(_: web.Request) -> web.StreamResponse:
        return web.Response(body=blob, headers={"Content-Type": content_type})

    origin = await serve(typed)
    fetcher = make_fetcher()
    layer = Layer(sha256_digest(blob), origin.url("/b"))
    if ok:
        with await fetcher.fetch(layer) as fetched:
            assert fetched.compression == compression
    else:
        with pytest.raises(FetchError, match="content-type") as info:
            await fetcher.fetch(layer)
        assert info.value.client_error
        assert fetcher.cached_digests() == []


def test_declared_compression_of_missing_content_type() -> None:
    assert declared_compression("") is None


async def test_redirect_to_other_host_strips_authorization(
    make_fetcher: Callable[..., LayerFetcher], serve: StartOrigin
) -> None:
    blob = build_layer({"f": b"6"})
    storage = await serve(serve_bytes(blob), host="127.0.0.2")

    async def registry_blob(request: web.Request) -> web.StreamResponse:
        if request.path == "/v2/r/blobs/x":
            raise web.HTTPFound("/v2/r/blobs/x/moved")  # same host keeps the credentials
        # Set by hand: aiohttp's HTTPRedirect would normalise the escaped slash away.
        location = storage.url("/signed?X-Amz-Signature=a%2Fb")
        return web.Response(status=307, headers={"Location": location})

    registry_origin = await serve(registry_blob)
    layer = Layer(
        sha256_digest(blob),
        registry_origin.url("/v2/r/blobs/x"),
        {"Authorization": ["Bearer secret"], "X-Trace": ["one", "two"]},
    )
    with await make_fetcher().fetch(layer) as fetched:
        assert fetched.path.read_bytes() == blob
    assert [r.get("Authorization") for r in registry_origin.requests] == ["Bearer secret"] * 2
    assert registry_origin.requests[0].getall("X-Trace") == ["one", "two"]
    [storage_request] = storage.requests
    assert storage.paths == ["/signed?X-Amz-Signature=a%2Fb"]  # a presigned URL stays exact
    assert "Authorization" not in storage_request
    assert storage_request.getall("X-Trace") == ["one", "two"]


async def test_eviction_keeps_bound_and_spares_held_blobs(
    make_fetcher: Callable[..., LayerFetcher], serve: StartOrigin
) -> None:
    blobs = [blob_of(100_000, seed=i) for i in range(5)]
    by_path = {f"/{i}": blob for i, blob in enumerate(blobs)}

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=by_path[request.path])

    origin = await serve(handler)
    layers = [Layer(sha256_digest(b), origin.url(f"/{i}")) for i, b in enumerate(blobs)]
    bound = 250_000
    fetcher = make_fetcher(max_cache_bytes=bound)

    held = await fetcher.fetch(layers[0])
    for layer in layers[1:3]:
        (await fetcher.fetch(layer)).release()
    # Blob 0 is the least recently used, but held: blob 1 had to go instead.
    assert fetcher.cached_digests() == [layers[0].hash, layers[2].hash]
    assert held.path.read_bytes() == blobs[0]
    assert fetcher.cached_bytes <= bound

    held.release()
    (await fetcher.fetch(layers[3])).release()
    assert fetcher.cached_digests() == [layers[2].hash, layers[3].hash]
    assert not held.path.exists()

    # All pinned: the cache may exceed its bound only until the holders let go.
    pinned: list[FetchedLayer] = [await fetcher.fetch(layers[i]) for i in (2, 3, 4)]
    assert fetcher.cached_bytes > bound
    for fetched in pinned:
        fetched.release()
    assert fetcher.cached_bytes <= bound
    assert fetcher.cached_digests() == [layers[3].hash, layers[4].hash]
    on_disk = sorted(p.name for p in (fetcher_root(fetcher) / "sha256").iterdir())
    assert on_disk == sorted(layer.hash.split(":")[1] for layer in layers[3:])


def test_image_helpers_write_oci_layer_entries() -> None:
    files: dict[str, Entry] = {
        "etc/os-release": Symlink("../usr/lib/os-release"),
        "usr/lib/os-release": "ID=debian\n",
        "usr/bin/tool": Mode(b"#!/bin/sh\n", 0o755),
        "usr/bin/alias": Hardlink("usr/bin/tool"),
        "var/lib/old": WHITEOUT,
        "opt/app": OPAQUE,
    }
    blob = build_layer(files, "zstd")
    assert blob == build_layer(files, "zstd"), "layers must be reproducible"
    with tarfile.open(fileobj=io.BytesIO(decompress(blob))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == [
        "etc",
        "etc/os-release",
        "opt",
        "opt/app",
        "opt/app/.wh..wh..opq",
        "usr",
        "usr/bin",
        "usr/bin/alias",
        "usr/bin/tool",
        "usr/lib",
        "usr/lib/os-release",
        "var",
        "var/lib",
        "var/lib/.wh.old",
    ]
    assert members["etc/os-release"].issym()
    assert members["etc/os-release"].linkname == "../usr/lib/os-release"
    assert members["usr/bin/alias"].islnk()
    assert members["usr/bin/tool"].mode == 0o755
    assert members["usr"].isdir()
