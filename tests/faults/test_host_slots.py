"""Slow layer hosts get only their share of the indexer's slots: while several hosts drip,
each holding as many index requests (`indexer.index_report_host_concurrency`) and layer
downloads (`indexer.layer_host_concurrency`) as it may, a client whose layers are on a healthy
host is served at once, not refused with 429 and not queued behind the drips. The throttled
hosts are real HTTP servers dripping a byte at a time until the test releases them."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import REGISTRY

from tests.fixtures.combo import Combo, running_combo
from tests.fixtures.faulty import FaultyOrigin
from tests.fixtures.images import build_layer, sha256_digest

INDEX_URL = "/indexer/api/v1/index_report"


def layer(seed: int) -> bytes:
    # Random bytes do not compress: dripped a byte at a time, it is never done by itself.
    return build_layer({f"etc/seed{seed}": random.Random(seed).randbytes(4096)})


def manifest(n: int, layers: list[tuple[bytes, str]]) -> dict[str, Any]:
    return {
        "hash": "sha256:" + f"{n:04x}" * 16,
        "layers": [{"hash": sha256_digest(blob), "uri": uri} for blob, uri in layers],
    }


async def post(http: httpx.AsyncClient, doc: dict[str, Any]) -> httpx.Response:
    return await http.post(INDEX_URL, json=doc, timeout=120)


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60  # a hang guard, not a measurement
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def slow_hosts(count: int) -> AsyncIterator[tuple[list[FaultyOrigin], asyncio.Event]]:
    """`count` origins on their own ports, and the event that releases their throttled paths."""
    release = asyncio.Event()
    async with AsyncExitStack() as stack:
        origins = []
        for _ in range(count):
            origin = FaultyOrigin()
            await origin.start()
            stack.push_async_callback(origin.stop)
            origins.append(origin)
        try:
            yield origins, release
        finally:
            release.set()


@asynccontextmanager
async def combo_with(pg_dsn: str, tmp_path: Path, **indexer: Any) -> AsyncIterator[Combo]:
    indexer["layer_min_rate"] = 0  # no floor: the test itself ends the slow hosts' drips
    async with running_combo(pg_dsn, tmp_path / "cache", extra_config={"indexer": indexer}) as c:
        yield c


def refusals() -> tuple[float, float]:
    """429s counted in Clair's family (what dashboards watch) and in the per-host counter."""
    labels = {"endpoint": "/indexer/api/v1/index_report", "method": "post"}
    clair = REGISTRY.get_sample_value("clair_http_concurrencylimited_total", labels)
    host = REGISTRY.get_sample_value("clair_indexer_host_limited_total")
    return clair or 0.0, host or 0.0


async def test_slow_hosts_take_only_their_share_of_request_slots(
    pg_dsn: str, tmp_path: Path, faulty_origin: FaultyOrigin
) -> None:
    counted_before = refusals()
    async with (
        slow_hosts(3) as (origins, release),
        combo_with(
            pg_dsn,
            tmp_path,
            index_report_request_concurrency=4,
            index_report_host_concurrency=1,
        ) as combo,
    ):
        docs = []
        for h, origin in enumerate(origins):
            for k in range(2):
                n = 0x100 + 0x10 * h + k
                blob = layer(n)
                docs.append(manifest(n, [(blob, origin.throttle(f"/slow{n}", blob, release))]))
        slow: list[asyncio.Task[httpx.Response]] = []
        for doc in docs:  # clients arriving one after another
            slow.append(asyncio.create_task(post(combo.client, doc)))
            # Each is either downloading (its slots held) or answered before the next comes.
            await until(
                lambda: sum(o.in_flight for o in origins) + sum(t.done() for t in slow) == len(slow)
            )

        good = layer(1)
        resp = await post(combo.client, manifest(1, [(good, faulty_origin.serve("/good", good))]))
        assert resp.status_code == 201, resp.text
        assert resp.json()["state"] == "IndexFinished"

        assert [o.in_flight for o in origins] == [1, 1, 1]  # each host's one share, still held
        refused = [i for i, task in enumerate(slow) if task.done()]
        assert len(refused) == 3
        for i in refused:
            answer = slow[i].result()
            assert answer.status_code == 429, answer.text
            assert answer.json()["code"] == "too-many-requests"
            assert "indexer.index_report_host_concurrency" in answer.json()["message"]
        assert refusals() == (counted_before[0] + 3, counted_before[1] + 3)

        release.set()
        admitted = await asyncio.gather(*(t for i, t in enumerate(slow) if i not in refused))
        assert [r.status_code for r in admitted] == [201] * 3
        # Refused, not lost: once the host has room, a retry is indexed.
        for i in refused:
            retry = await post(combo.client, docs[i])
            assert retry.status_code == 201, retry.text


async def test_slow_layers_leave_scan_slots_to_other_hosts(
    pg_dsn: str, tmp_path: Path, faulty_origin: FaultyOrigin
) -> None:
    # Two scan slots; the default share of one host is half of them.
    async with (
        slow_hosts(1) as ([origin], release),
        combo_with(pg_dsn, tmp_path, layer_scan_concurrency=2) as combo,
    ):
        blobs = [layer(0x200 + i) for i in range(3)]
        doc = manifest(
            0x200, [(b, origin.throttle(f"/layer{i}", b, release)) for i, b in enumerate(blobs)]
        )
        slow = asyncio.create_task(post(combo.client, doc))
        await until(lambda: origin.in_flight >= 1)

        good = layer(2)
        fast = post(combo.client, manifest(2, [(good, faulty_origin.serve("/good", good))]))
        resp = await asyncio.wait_for(fast, 60)  # without shares it waits for the release
        assert resp.status_code == 201, resp.text
        assert resp.json()["state"] == "IndexFinished"
        assert not slow.done()
        assert origin.in_flight == 1  # the host's one turn; its other layers wait for it

        release.set()
        finished = await slow
        assert finished.status_code == 201, finished.text
        assert finished.json()["state"] == "IndexFinished"
