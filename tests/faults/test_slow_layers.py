"""Slow layer hosts cannot hold the indexer: a layer download fails as the client's fault when
its host falls under `indexer.layer_min_rate` bytes/s for an `indexer.layer_rate_window`
(dripping hosts, black holes) or runs past `indexer.layer_fetch_timeout`, so request slots
free up and other clients get their reports. A layer digest another manifest is downloading
from a dead URL is fetched from this manifest's own URL once that download fails."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.combo import Combo, running_combo
from tests.fixtures.faulty import FaultyOrigin, black_hole
from tests.fixtures.images import build_layer, sha256_digest

INDEX_URL = "/indexer/api/v1/index_report"
LIMITS = {
    "layer_fetch_timeout": "3s",
    "layer_min_rate": 1000,
    "layer_rate_window": "1s",
    "index_report_request_concurrency": 4,
    # One host serves every layer here: these tests show the floor alone, without per-host
    # shares of the slots (tests/faults/test_host_slots.py shows those).
    "index_report_host_concurrency": -1,
}


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Combo]:
    async with running_combo(pg_dsn, tmp_path / "cache", extra_config={"indexer": LIMITS}) as c:
        yield c


def manifest(n: int, blob: bytes, uri: str) -> dict[str, Any]:
    return {
        "hash": "sha256:" + f"{n:04x}" * 16,
        "layers": [{"hash": sha256_digest(blob), "uri": uri}],
    }


def layer(seed: int, size: int = 0) -> bytes:
    noise = random.Random(seed).randbytes(size)  # random: gzip cannot shrink it
    return build_layer({f"etc/seed{seed}": str(seed).encode(), "opt/noise": noise})


async def post(http: httpx.AsyncClient, doc: dict[str, Any]) -> httpx.Response:
    return await http.post(INDEX_URL, json=doc, timeout=120)


async def assert_client_fault(
    resp: httpx.Response, combo: Combo, doc: dict[str, Any], why: str
) -> None:
    assert resp.status_code == 400, resp.text
    assert why in resp.json()["message"]
    stored = await combo.client.get(f"{INDEX_URL}/{doc['hash']}")
    assert stored.json()["state"] == "IndexError"


async def test_dripping_host_fails_the_rate_floor(
    combo: Combo, faulty_origin: FaultyOrigin
) -> None:
    blob = layer(1)
    doc = manifest(1, blob, faulty_origin.drip("/drip", blob, every=0.5))
    resp = await post(combo.client, doc)
    await assert_client_fault(resp, combo, doc, "slower than 1000 bytes/s")


async def test_black_hole_fails_the_rate_floor(combo: Combo) -> None:
    blob = layer(2)
    async with black_hole() as url:
        doc = manifest(2, blob, f"{url}/blob")
        resp = await post(combo.client, doc)
    await assert_client_fault(resp, combo, doc, "slower than 1000 bytes/s")


async def test_steady_but_endless_host_hits_the_deadline(
    combo: Combo, faulty_origin: FaultyOrigin
) -> None:
    blob = layer(3, size=400_000)  # 4 KiB every 50 ms: over the floor, 5 s in all
    doc = manifest(3, blob, faulty_origin.drip("/long", blob, every=0.05, size=4096))
    resp = await post(combo.client, doc)
    await assert_client_fault(resp, combo, doc, "took longer than 3s")


async def test_slow_hosts_do_not_lock_other_clients_out(
    combo: Combo, faulty_origin: FaultyOrigin
) -> None:
    """Every request slot taken by dripping hosts and a black hole: a good client, retrying
    on 429 as clients do, still gets its report once the floor has cut the slow ones off."""
    good = layer(10)
    good_doc = manifest(10, good, faulty_origin.serve("/good", good))
    async with black_hole() as hole:
        slow_docs = [manifest(20, layer(20), f"{hole}/blob")]
        for i in range(21, 24):
            blob = layer(i)
            slow_docs.append(manifest(i, blob, faulty_origin.drip(f"/drip{i}", blob, every=0.5)))
        slow = [asyncio.create_task(post(combo.client, doc)) for doc in slow_docs]
        await asyncio.sleep(0.3)
        statuses = []
        for _ in range(100):
            resp = await post(combo.client, good_doc)
            statuses.append(resp.status_code)
            if resp.status_code != 429:
                break
            await asyncio.sleep(0.1)
        assert statuses[-1] == 201, statuses
        assert statuses[0] == 429  # the slow hosts did hold every slot at first
        results = await asyncio.gather(*slow)
    assert [r.status_code for r in results] == [400] * len(slow_docs)


async def test_failed_shared_download_falls_back_to_own_url(
    combo: Combo, faulty_origin: FaultyOrigin
) -> None:
    blob = layer(30)
    dead = manifest(30, blob, faulty_origin.status("/dead", 503))
    alive = manifest(31, blob, faulty_origin.serve("/alive", blob))
    first = asyncio.create_task(post(combo.client, dead))
    await asyncio.wait_for(faulty_origin.arrived.wait(), 30)  # /dead: its download started
    second = await post(combo.client, alive)  # same layer digest, its download in flight
    assert second.status_code == 201, second.text
    assert second.json()["state"] == "IndexFinished"
    assert faulty_origin.requests["/alive"] == 1
    assert (await first).status_code == 400
