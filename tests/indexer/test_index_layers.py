"""Coalescing across layers, the API's states and errors, and storage reuse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from clair_common.models import Layer, Manifest
from tests.fixtures.images import build_layer, sha256_digest, whiteout_path
from tests.fixtures.registry import LocalRegistry
from tests.indexer.harness import Indexer, running_indexer

SITE = "usr/local/lib/python3.8/site-packages"


@pytest.fixture
async def indexer(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Indexer]:
    async with running_indexer(pg_dsn, tmp_path / "cache") as idx:
        yield idx


def _status(packages: dict[str, str]) -> bytes:
    stanzas = [
        f"Package: {name}\nStatus: install ok installed\nVersion: {version}\nArchitecture: amd64\n"
        for name, version in packages.items()
    ]
    return "\n".join(stanzas).encode()


def _metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()


async def test_upgrade_and_whiteout(
    indexer: Indexer, registry: LocalRegistry, shared_data: Path
) -> None:
    """Layer 2 upgrades a package, layer 3 deletes a Python package with a whiteout."""
    os_release = (
        shared_data / "layers/debian-12-bookworm-minbase-debootstrap/usr/lib/os-release"
    ).read_bytes()
    base = {"tar": "1.34+dfsg-1.2", "gzip": "1.12-1", "sed": "4.9-1"}
    layer1 = build_layer(
        {
            "etc/os-release": os_release,
            "var/lib/dpkg/status": _status(base),
            f"{SITE}/requests-2.19.1.dist-info/METADATA": _metadata("requests", "2.19.1"),
            f"{SITE}/urllib3-1.24.1.dist-info/METADATA": _metadata("urllib3", "1.24.1"),
        }
    )
    layer2 = build_layer({"var/lib/dpkg/status": _status({**base, "tar": "1.34+dfsg-1.2+deb12u1"})})
    layer3 = build_layer({whiteout_path(f"{SITE}/urllib3-1.24.1.dist-info"): b""}, "zstd")
    manifest = await registry.push_image("layered", [layer1, layer2, layer3])

    resp = await indexer.post(manifest)
    assert resp.status_code == 201, resp.text
    report = resp.json()
    by_name = {p["name"]: p for p in report["packages"].values()}
    assert set(by_name) == {"tar", "gzip", "sed", "requests"}
    assert by_name["tar"]["version"] == "1.34+dfsg-1.2+deb12u1"

    def introduced(name: str) -> str:
        (env,) = report["environments"][by_name[name]["id"]]
        return str(env["introduced_in"])

    assert introduced("tar") == manifest.layers[1].hash
    assert introduced("gzip") == manifest.layers[0].hash
    assert introduced("requests") == manifest.layers[0].hash
    (dist,) = report["distributions"].values()
    assert dist["did"] == "debian"


async def test_states_etags_and_deletes(indexer: Indexer, registry: LocalRegistry) -> None:
    layer = build_layer({f"{SITE}/idna-2.7.dist-info/METADATA": _metadata("idna", "2.7")})
    manifest = await registry.push_image("small", [layer])
    client = indexer.client

    state = (await client.get("/indexer/api/v1/index_state")).json()["state"]
    etag = f'"{state}"'
    first = await indexer.post(manifest)
    assert first.status_code == 201
    assert first.headers["etag"] == etag
    assert first.headers["location"] == f"/indexer/api/v1/index_report/{manifest.hash}"
    assert "vulnerability_report" in first.headers["link"]

    again = await indexer.post(manifest)
    assert again.status_code == 201 and again.json() == first.json()
    precondition = await client.post(
        "/indexer/api/v1/index_report", json=manifest.to_json(), headers={"If-None-Match": etag}
    )
    assert precondition.status_code == 412
    assert precondition.headers["link"] == first.headers["link"]  # as Clair's 412

    url = f"/indexer/api/v1/index_report/{manifest.hash}"
    got = await client.get(url)
    assert got.status_code == 200 and got.json() == first.json() and got.headers["etag"] == etag
    assert (await client.get(url, headers={"If-None-Match": etag})).status_code == 304
    assert (await client.get("/indexer/api/v1/index_report/sha256:nothex")).status_code == 400
    assert (await client.get(url, headers={"Accept": "text/html"})).status_code == 415

    deleted = await client.request("DELETE", "/indexer/api/v1/index_report", json=[manifest.hash])
    assert deleted.status_code == 200 and deleted.json() == [manifest.hash]
    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url)).status_code == 204
    nothing = await client.request("DELETE", "/indexer/api/v1/index_report", json=[manifest.hash])
    assert nothing.json() is None


async def test_bad_manifests(indexer: Indexer) -> None:
    client = indexer.client
    for body, fragment in [
        (b"{", "failed to deserialize manifest"),
        (b'{"hash": "", "layers": []}', "bogus manifest"),
        (b'{"hash": "sha256:' + b"a" * 64 + b'", "layers": []}', "bogus manifest"),
    ]:
        resp = await client.post("/indexer/api/v1/index_report", content=body)
        assert resp.status_code == 400
        assert resp.json()["code"] == "bad-request" and fragment in resp.json()["message"]


async def test_unreadable_layer_is_stored_as_index_error(
    indexer: Indexer, registry: LocalRegistry
) -> None:
    manifest = await registry.push_image("garbage", [b"this is not a tar archive at all" * 40])
    resp = await indexer.post(manifest)
    assert resp.status_code == 400
    assert resp.json()["code"] == "bad-request"
    stored = await indexer.client.get(f"/indexer/api/v1/index_report/{manifest.hash}")
    assert stored.status_code == 200
    assert stored.json()["state"] == "IndexError" and stored.json()["success"] is False
    assert stored.json()["err"]


async def test_digest_mismatch_names_both(indexer: Indexer, registry: LocalRegistry) -> None:
    real = await registry.push_image("mismatch", [build_layer({"etc/hostname": b"x\n"})])
    claimed = "sha256:" + "b" * 64
    manifest = Manifest("sha256:" + "c" * 64, [Layer(claimed, real.layers[0].uri)])
    resp = await indexer.post(manifest)
    assert resp.status_code == 400, resp.text
    message = resp.json()["message"]
    assert claimed in message and real.layers[0].hash in message


async def test_layers_are_scanned_once_and_shared(
    indexer: Indexer, registry: LocalRegistry
) -> None:
    shared = build_layer({f"{SITE}/idna-2.7.dist-info/METADATA": _metadata("idna", "2.7")})
    a = await registry.push_image("share-a", [shared, build_layer({"a": b"1"})])
    b = await registry.push_image("share-b", [shared, build_layer({"b": b"2"})])
    ra, rb = await asyncio.gather(indexer.post(a), indexer.post(b))
    assert ra.status_code == rb.status_code == 201
    conn = await asyncpg.connect(indexer.dsn)
    try:
        rows = await conn.fetch(
            "SELECT l.hash, count(*) AS n FROM indexer.package_scanartifact a"
            " JOIN indexer.layer l ON l.id = a.layer_id GROUP BY l.hash"
        )
    finally:
        await conn.close()
    assert {r["hash"]: r["n"] for r in rows} == {sha256_digest(shared): 1}


async def test_request_limit_answers_429(
    pg_dsn: str, tmp_path: Path, registry: LocalRegistry
) -> None:
    async with running_indexer(pg_dsn, tmp_path / "c", request_limit=1) as idx:
        manifests = [
            await registry.push_image(f"limit{i}", [build_layer({f"f{i}": b"x" * (1 << 20)})])
            for i in range(4)
        ]
        responses = await asyncio.gather(*(idx.post(m) for m in manifests))
        codes = sorted(r.status_code for r in responses)
        assert 201 in codes and 429 in codes
        limited: Any = next(r for r in responses if r.status_code == 429).json()
        assert limited == {
            "code": "too-many-requests",
            "message": "server handling too many requests",
        }
