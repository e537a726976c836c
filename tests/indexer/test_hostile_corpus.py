"""Hostile layers and manifests, end to end: registry → in-process indexer → HTTP answer → DB.

Each case is pushed to the real registry fixture (or served by a misbehaving local server) and
POSTed to one indexer that first indexed a good manifest.  Every case must answer within a time
bound with the expected status, leave a stored report saying why (an IndexError for failures),
and leave the good manifest's report and every row of other manifests and layers unchanged.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web

from clair_common.db.locks import AdvisoryLocks
from clair_common.db.migrate import migrate
from clair_common.db.pool import create_pool
from clair_common.http.app import build_api_app
from clair_common.models import Manifest
from clair_indexer._tap import StreamTap, TapBroken
from clair_indexer.app import build_operations
from clair_indexer.fetch import LayerFetcher
from clair_indexer.scanners import default_scanners
from clair_indexer.service import IndexerService
from clair_indexer.store import IndexerStore
from tests.fixtures import hostile as h
from tests.fixtures.images import build_layer, sha256_digest
from tests.fixtures.local_app import serve_app
from tests.fixtures.postgres import create_test_database, drop_test_database
from tests.fixtures.registry import LocalRegistry

API = "/indexer/api/v1"
TIME_BOUND = 10.0
FETCH_TIMEOUT = 1.0  # the fetcher's connect/read timeout here; one retry
SITE = "usr/local/lib/python3.11/site-packages"
DEBIAN_OS_RELEASE = b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
# Tables whose rows are shared dictionaries: a hostile manifest may add rows, never change any.
SHARED_TABLES = ("package", "dist", "repo", "scanner")


@dataclass
class Env:
    client: httpx.AsyncClient
    dsn: str
    registry: LocalRegistry
    good: Manifest
    good_report: bytes


@asynccontextmanager
async def _indexer(dsn: str, cache_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    await migrate(dsn, "indexer", "clair_indexer")
    pool = await create_pool(dsn, schema="indexer", application_name="test-hostile")
    locks = AdvisoryLocks(dsn)
    fetcher = LayerFetcher(
        cache_dir, max_cache_bytes=1 << 30, timeout=FETCH_TIMEOUT, retries=1, backoff=0.05
    )
    service = IndexerService(IndexerStore(pool), locks, fetcher, default_scanners())
    await service.start()
    app = build_api_app(build_operations(service))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://indexer"
        ) as client:
            yield client
    finally:
        await fetcher.close()
        await locks.close()
        await pool.close()


@pytest.fixture(scope="module")
async def env(
    pg_server_dsn: str, registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Env]:
    dsn = await create_test_database(pg_server_dsn)
    try:
        async with _indexer(dsn, tmp_path_factory.mktemp("hostile-cache")) as client:
            good = await registry.push_image("good", _good_layers())
            resp = await client.post(f"{API}/index_report", json=good.to_json())
            assert resp.status_code == 201, resp.text
            report = (await client.get(f"{API}/index_report/{good.hash}")).content
            yield Env(client, dsn, registry, good, report)
    finally:
        await drop_test_database(pg_server_dsn, dsn)


def _good_layers() -> list[bytes]:
    return [
        build_layer(
            {
                "etc/os-release": DEBIAN_OS_RELEASE,
                "var/lib/dpkg/status": h.dpkg_status("bash", "coreutils"),
                f"{SITE}/idna-3.4.dist-info/METADATA": b"Name: idna\nVersion: 3.4\n",
            }
        ),
        build_layer({"var/lib/dpkg/status": h.dpkg_status("bash", "coreutils", "curl")}, "zstd"),
    ]


# -- database snapshots ---------------------------------------------------------------------


async def _snapshot(dsn: str, hostile: str) -> dict[str, list[str]]:
    """Every row of the indexer schema, minus those of `hostile` and of layers only it uses."""
    conn = await asyncpg.connect(dsn)
    try:
        mid = await conn.fetchval("SELECT id FROM indexer.manifest WHERE hash = $1", hostile)
        own_layers = await conn.fetchval(
            "SELECT coalesce(array_agg(layer_id), '{}') FROM indexer.manifest_layer"
            " WHERE manifest_id = $1 AND layer_id NOT IN"
            " (SELECT layer_id FROM indexer.manifest_layer WHERE manifest_id <> $1)",
            mid or 0,
        )
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'indexer'"
            " AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'schema%'"
        )
        out: dict[str, list[str]] = {}
        for (table,) in tables:
            columns = {
                r[0]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = 'indexer' AND table_name = $1",
                    table,
                )
            }
            where = ["$1::bigint IS NOT NULL AND $2::bigint[] IS NOT NULL"]
            if table == "manifest":
                where.append("id <> $1")
            if table == "layer":
                where.append("id <> ALL($2::bigint[])")
            if "manifest_id" in columns:
                where.append("manifest_id <> $1")
            if "layer_id" in columns:
                where.append("layer_id <> ALL($2::bigint[])")
            query = f"SELECT t::text FROM indexer.{table} t WHERE " + " AND ".join(where)
            rows = await conn.fetch(query + " ORDER BY 1", mid or 0, own_layers)
            out[table] = [r[0] for r in rows]
        return out
    finally:
        await conn.close()


def _assert_untouched(before: dict[str, list[str]], after: dict[str, list[str]]) -> None:
    assert before.keys() == after.keys()
    for table, rows in before.items():
        if table in SHARED_TABLES:
            missing = set(rows) - set(after[table])
            assert not missing, f"{table}: rows changed or vanished: {sorted(missing)[:5]}"
        else:
            assert after[table] == rows, f"{table}: {len(rows)} rows before, {len(after[table])}"


# -- the corpus -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    layers: Callable[[], list[bytes]]
    status: int
    err: str = ""  # a fragment of the stored report's `err` (failures only)
    packages: frozenset[str] = frozenset()  # successes: the report's package names
    dists: frozenset[str] = frozenset()  # successes: the report's distribution ids


def _one(blob: Callable[[], bytes]) -> Callable[[], list[bytes]]:
    return lambda: [blob()]


def _plain(*members: bytes) -> Callable[[], list[bytes]]:
    return _one(lambda: h.gzip(h.tar(*members)))


GOOD_TAR = h.tar(h.regular("var/lib/dpkg/status", h.dpkg_status("ok")))

CASES: dict[str, Case] = {
    # Names are rooted at the layer: "/x" is "x"; names climbing out of it are skipped.
    "path-traversal": Case(
        _plain(
            h.regular("../../etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            h.regular("/var/lib/dpkg/status", h.dpkg_status("rooted")),
            h.regular("../../var/lib/dpkg/status", h.dpkg_status("escaped")),
            h.regular("a/../../../var/lib/dpkg/status", h.dpkg_status("escaped-too")),
            h.regular("/abs/var/lib/dpkg/status", h.dpkg_status("abs-prefixed")),
        ),
        201,
        packages=frozenset({"rooted", "abs-prefixed"}),
    ),
    "symlink-loops": Case(
        lambda: [
            h.gzip(
                h.tar(
                    h.symlink("etc/os-release", "/etc/os-release"),
                    h.symlink("a", "b"),
                    h.symlink("b", "a"),
                    h.symlink("usr/lib/os-release", "/a"),
                    h.symlink("etc/lsb-release", "../etc/lsb-release/x"),
                    h.symlink("var/lib/dpkg", "/"),
                    h.regular("status", h.dpkg_status("beside-root")),
                )
            ),
            h.gzip(h.tar(h.symlink("etc", "etc/etc"), h.symlink("lib/apk/db", ".."))),
        ],
        201,
    ),
    # An absolute target resolves inside the layer (as in a chroot), never on the host.
    "absolute-symlinks": Case(
        _plain(
            h.symlink("etc/os-release", "/../../../usr/lib/os-release"),
            h.regular("usr/lib/os-release", DEBIAN_OS_RELEASE),
            h.symlink("lib/apk/db/installed", "/etc/shadow"),
            h.symlink("etc/issue", "/proc/self/environ"),
        ),
        201,
        dists=frozenset({"debian"}),
    ),
    "hard-links": Case(
        _plain(
            h.hardlink("x", "../../x"),
            h.hardlink("var/lib/dpkg/status", "does/not/exist"),
            h.hardlink("lib/apk/db/installed", "../../../etc/passwd"),
        ),
        201,
    ),
    "long-link-targets": Case(_one(h.long_link_targets), 201),
    "many-members": Case(_one(lambda: h.many_members(200_000)), 201),
    "garbage-text-databases": Case(
        _plain(
            h.regular("var/lib/dpkg/status", h.noise(8192, 1)),
            h.regular("lib/apk/db/installed", h.noise(8192, 2)),
            h.regular(f"{SITE}/x-1.0.dist-info/METADATA", h.noise(8192, 3)),
            h.regular("etc/os-release", h.noise(8192, 4)),
            h.regular("etc/lsb-release", h.noise(8192, 5)),
            h.regular("etc/issue", h.noise(8192, 6)),
            h.regular("var/lib/dpkg/status.d/junk", h.noise(8192, 7)),
        ),
        201,
    ),
    # A broken rpm database fails the scan, as in Clair: an indexing error, not bad input.
    "garbage-rpmdb": Case(
        _plain(h.regular("var/lib/rpm/rpmdb.sqlite", h.noise(8192, 8))),
        500,
        "not an sqlite database",
    ),
    "gzip-bomb": Case(_one(lambda: h.bomb("gzip")), 400, "decompression bomb"),
    "zstd-bomb": Case(_one(lambda: h.bomb("zstd")), 400, "decompression bomb"),
    "listing-bomb": Case(_one(h.listing_bomb), 400, "layer lists too many"),
    "truncated-huge-member": Case(_one(h.truncated_member), 400, "tar stream truncated"),
    "huge-wanted-file": Case(
        _one(h.huge_wanted_file),
        400,
        "wanted file 'var/lib/dpkg/status' is 209715200 bytes, over the limit",
    ),
    "truncated-gzip": Case(_one(lambda: h.gzip(GOOD_TAR)[:-20]), 400, "gzip stream truncated"),
    "bit-flipped-gzip-crc": Case(
        _one(lambda: h.flip_bits(h.gzip(GOOD_TAR), -6)), 400, "corrupt gzip stream"
    ),
    "bit-flipped-gzip-data": Case(
        _one(lambda: h.flip_bits(h.gzip(GOOD_TAR), 30, 0x5A)), 400, "gzip"
    ),
    "truncated-zstd": Case(_one(lambda: h.zstd(GOOD_TAR)[:-7]), 400, "zstd stream truncated"),
    "bit-flipped-zstd": Case(
        _one(lambda: h.flip_bits(h.zstd(GOOD_TAR), -2)), 400, "corrupt zstd stream"
    ),
    "random-garbage": Case(_one(lambda: h.noise(1 << 16, 9)), 400, "not a tar archive"),
    "bzip2": Case(
        _one(lambda: h.bzip2_layer(GOOD_TAR)), 400, "unsupported layer compression: bzip2"
    ),
    "xz": Case(_one(lambda: h.xz_layer(GOOD_TAR)), 400, "unsupported layer compression: xz"),
}


async def _post(env: Env, manifest: dict[str, Any]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    resp = await env.client.post(f"{API}/index_report", json=manifest, timeout=60)
    return resp, time.monotonic() - started


async def _check(env: Env, manifest: dict[str, Any], status: int, err: str) -> dict[str, Any]:
    """POST `manifest` and check the answer, the stored report, the bound and the good data."""
    digest = str(manifest["hash"])
    before = await _snapshot(env.dsn, digest)
    resp, elapsed = await _post(env, manifest)
    assert resp.status_code == status, resp.text
    assert elapsed < TIME_BOUND, f"took {elapsed:.1f}s"
    stored = await env.client.get(f"{API}/index_report/{digest}")
    assert stored.status_code == 200, stored.text
    report: dict[str, Any] = stored.json()
    if status == 201:
        assert report["state"] == "IndexFinished" and report["success"] is True
    else:
        assert resp.json()["message"].startswith("failed to start scan: ")
        assert report["state"] == "IndexError" and report["success"] is False
        assert err in report["err"], report["err"]
        assert err in resp.json()["message"]
    _assert_untouched(before, await _snapshot(env.dsn, digest))
    good = await env.client.get(f"{API}/index_report/{env.good.hash}")
    assert good.content == env.good_report
    return report


async def _push(registry: LocalRegistry, repo: str, blobs: list[bytes]) -> dict[str, Any]:
    """Blobs only: a registry image needs diff IDs, which corrupt blobs do not have."""
    digests = [await asyncio.to_thread(registry.push_blob_sync, repo, b) for b in blobs]
    return _manifest(repo, [(d, registry.blob_url(repo, d)) for d in digests])


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_layer(env: Env, name: str) -> None:
    case = CASES[name]
    built = await asyncio.to_thread(case.layers)
    # The good manifest's first layer rides along: its stored scan must not change either.
    manifest = await _push(env.registry, f"hostile-{name}", [_good_layers()[0], *built])
    report = await _check(env, manifest, case.status, case.err)
    if case.status == 201:
        names = {p["name"] for p in report["packages"].values()} - {"bash", "coreutils", "idna"}
        assert names == case.packages
        dists = {d["did"] for d in report["distributions"].values()} - {"debian"}
        assert dists == case.dists - {"debian"}


# -- manifests that point at the wrong thing --------------------------------------------------


def _manifest(digest_seed: str, layers: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "hash": sha256_digest(digest_seed.encode()),
        "layers": [{"hash": d, "uri": u, "headers": {}} for d, u in layers],
    }


@pytest.mark.parametrize(
    "layer_hash",
    ["sha256:xyz", "sha256:" + "a" * 63, "md5:" + "a" * 32, "sha256:" + "A" * 64, ""],
)
async def test_bad_layer_digest_is_rejected_unstored(env: Env, layer_hash: str) -> None:
    manifest = _manifest(f"bad-digest{layer_hash}", [(layer_hash, "http://127.0.0.1:1/x")])
    resp, elapsed = await _post(env, manifest)
    assert resp.status_code == 400 and "bogus manifest" in resp.json()["message"]
    assert elapsed < TIME_BOUND
    assert (await env.client.get(f"{API}/index_report/{manifest['hash']}")).status_code == 404


async def test_digest_mismatch(env: Env) -> None:
    real = await _push(env.registry, "mismatch", [build_layer({"etc/hostname": b"h\n"})])
    lie = sha256_digest(b"something else")
    manifest = _manifest("mismatch", [(lie, real["layers"][0]["uri"])])
    await _check(env, manifest, 400, "digest mismatch")


@pytest.mark.parametrize(
    ("uri", "err"),
    [
        ("ftp://127.0.0.1/layer.tar", "unsupported scheme 'ftp'"),
        ("file:///etc/passwd", "unsupported scheme 'file'"),
        ("gopher://127.0.0.1:70/1", "unsupported scheme 'gopher'"),
        ("/etc/passwd", "unsupported scheme ''"),
        ("http:///no-host", "no host"),
    ],
)
async def test_unusable_uri(env: Env, uri: str, err: str) -> None:
    layer = sha256_digest(uri.encode())
    await _check(env, _manifest(f"uri{uri}", [(layer, uri)]), 400, err)


async def _serve(handler: Callable[[web.Request], Any]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner, address = await serve_app(app, shutdown_timeout=0.5)
    return runner, f"http://{address}"


async def test_closed_port(env: Env) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    layer = sha256_digest(b"closed")
    manifest = _manifest("closed", [(layer, f"http://127.0.0.1:{port}/blob")])
    await _check(env, manifest, 400, "gave up after 2 attempts")


async def test_server_that_accepts_and_never_answers(env: Env) -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # keep the connection open, say nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        layer = sha256_digest(b"silent")
        manifest = _manifest("silent", [(layer, f"http://127.0.0.1:{port}/blob")])
        await _check(env, manifest, 400, "gave up after 2 attempts")
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_body_that_stalls(env: Env) -> None:
    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        await resp.write(h.gzip(GOOD_TAR)[:100])
        await asyncio.sleep(3600)
        return resp

    runner, base = await _serve(stall)
    try:
        manifest = _manifest("stall", [(sha256_digest(b"stall"), f"{base}/blob")])
        await _check(env, manifest, 400, "gave up after 2 attempts")
    finally:
        await runner.cleanup()


async def test_redirects_forever(env: Env) -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/again{len(request.path)}")

    runner, base = await _serve(loop)
    try:
        manifest = _manifest("redirects", [(sha256_digest(b"redirect"), f"{base}/start")])
        await _check(env, manifest, 400, "more than 10 redirects")
    finally:
        await runner.cleanup()


async def test_endless_body(env: Env) -> None:
    """A body that never ends: the scan gives up on it, and so must the download."""

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        junk = h.noise(1 << 16, 10)
        deadline = time.monotonic() + 60  # bounded, in case the indexer does keep reading
        while time.monotonic() < deadline:
            await resp.write(junk)
        return resp

    runner, base = await _serve(endless)
    try:
        manifest = _manifest("endless", [(sha256_digest(b"endless"), f"{base}/blob")])
        await _check(env, manifest, 400, "not a tar archive")
    finally:
        await runner.cleanup()


def test_tap_abandoned_before_its_consumer_reads() -> None:
    """A download failing at once (bad scheme) abandons the tap before the scan thread reads."""
    tap = StreamTap()
    tap.fail("download failed")
    tap.abandon()  # drains the failure marker: the reader must still not wait forever
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            tap.readinto(bytearray(16))
        except TapBroken as err:
            outcome.append(err)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive() and len(outcome) == 1
