"""Layers from an HTTPS origin whose CA the operator added the way Go programs take it:
a `.cert` file in a directory named by SSL_CERT_DIR (as Quay mounts `extra_ca_cert_*`)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from clair_common.models import Layer
from clair_common.tls import extra_ca_files
from clair_indexer.fetch import FetchError, LayerFetcher
from tests.fixtures.certs import TestCA
from tests.fixtures.images import build_layer, sha256_digest

BLOB = build_layer({"etc/os-release": b'ID=alpine\nVERSION_ID=3.20.0\nNAME="Alpine Linux"\n'})


@dataclass
class TLSOrigin:
    url: str
    ca_dir: Path


@pytest.fixture
async def tls_origin(tmp_path: Path) -> AsyncIterator[TLSOrigin]:
    ca_dir = tmp_path / "extra-ca"
    ca_dir.mkdir()
    (ca_dir / "README").write_text("not a certificate: ignored, as Go ignores it\n")
    ca = TestCA(ca_dir / "extra_ca_cert_registry.cert")
    issued = ca.issue(tmp_path, "origin", hosts=("localhost",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)

    async def blob(_: web.Request) -> web.Response:
        return web.Response(body=BLOB, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/v2/tls/blobs/{digest}", blob)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield TLSOrigin(f"https://localhost:{port}/v2/tls/blobs/{sha256_digest(BLOB)}", ca_dir)
    finally:
        await runner.cleanup()


async def test_layer_from_an_origin_trusted_through_ssl_cert_dir(
    tls_origin: TLSOrigin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = Layer(sha256_digest(BLOB), tls_origin.url)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    untrusting = LayerFetcher(tmp_path / "cache-a", max_cache_bytes=1 << 20, retries=0)
    try:
        with pytest.raises(FetchError, match="certificate verify failed"):
            await untrusting.fetch(layer)
    finally:
        await untrusting.close()

    monkeypatch.setenv("SSL_CERT_DIR", f"{tmp_path / 'absent'}:{tls_origin.ca_dir}")
    fetcher = LayerFetcher(tmp_path / "cache-b", max_cache_bytes=1 << 20, retries=0)
    try:
        with await fetcher.fetch(layer) as fetched:
            assert fetched.path.read_bytes() == BLOB
    finally:
        await fetcher.close()


def test_extra_ca_files_read_like_go(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "b.cert").write_text("x")
    (one / "a.pem").write_text("x")
    (one / "sub").mkdir()
    (two / "c").write_text("x")
    bundle = tmp_path / "bundle.crt"
    env = {"SSL_CERT_FILE": str(bundle), "SSL_CERT_DIR": f"{one}::{tmp_path / 'gone'}:{two}"}
    assert extra_ca_files(env) == [bundle, one / "a.pem", one / "b.cert", two / "c"]
    assert extra_ca_files({}) == []
