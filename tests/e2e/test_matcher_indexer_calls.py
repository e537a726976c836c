"""Distributed: the matcher asks the indexer about a report only when what it holds is old.

Reports are polled far more often than they change. The matcher process holds finished index
reports and the index state for a second, then revalidates them with a conditional request,
which the indexer answers 304 only for a finished report that still exists.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from clair_common.remote import INDEXER_FRESHNESS
from tests.e2e.test_distributed import distributed
from tests.fixtures.distributed import PSKAuth, logs, pypi_image_and_feed, wait_for_update
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry

REPORT_HANDLER = "/indexer/api/v1/index_report/:digest"
STATE_HANDLER = "/indexer/api/v1/index_state"


async def indexer_gets(client: httpx.AsyncClient, introspection: str) -> dict[tuple[str, str], int]:
    """(handler, code) -> GET requests the indexer has answered, from its own metrics."""
    text = (await client.get(introspection + "/metrics")).text
    counts: dict[tuple[str, str], int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_request_total") and sample.labels.get("method") == "get":
                key = (sample.labels["handler"], sample.labels["code"])
                counts[key] = counts.get(key, 0) + int(sample.value)
    return counts


async def test_repeated_reports_cost_the_indexer_one_conditional_request_a_second(
    pg_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    pypa_osv: list[dict[str, Any]],
) -> None:
    updaters, manifest = await pypi_image_and_feed(
        feed_server, registry, shared_data, pypa_osv, "pypi-held"
    )
    key = secrets.token_bytes(32)
    async with (
        distributed(tmp_path, pg_dsn, updaters, key) as (indexer, matcher),
        httpx.AsyncClient(auth=PSKAuth(key), timeout=60) as client,
    ):
        await wait_for_update(client, matcher)
        resp = await client.post(
            indexer.api + "/indexer/api/v1/index_report", json=manifest.to_json()
        )
        assert resp.status_code == 201, resp.text + logs(indexer, matcher)
        report_url = f"{matcher.api}/matcher/api/v1/vulnerability_report/{manifest.hash}"
        before = await indexer_gets(client, indexer.introspection)

        started = time.monotonic()
        first = await client.get(report_url)
        assert first.status_code == 200, first.text + logs(indexer, matcher)
        for _ in range(20):
            again = await client.get(report_url)
            assert again.status_code == 200 and again.content == first.content
        # At most one revalidation (and one state call) per second held, however slow the
        # machine made those 21 requests.
        budget = 1 + int((time.monotonic() - started) / INDEXER_FRESHNESS)
        during = await indexer_gets(client, indexer.introspection)
        fetched = during.get((REPORT_HANDLER, "200"), 0) - before.get((REPORT_HANDLER, "200"), 0)
        assert fetched == 1, (before, during)
        assert during.get((REPORT_HANDLER, "304"), 0) < budget, (before, during)
        states = during.get((STATE_HANDLER, "200"), 0) - before.get((STATE_HANDLER, "200"), 0)
        assert states <= budget, (before, during)  # the report's tag carries the state too

        await asyncio.sleep(INDEXER_FRESHNESS + 0.2)
        again = await client.get(report_url)
        assert again.status_code == 200 and again.content == first.content
        after = await indexer_gets(client, indexer.introspection)
        revalidated = after.get((REPORT_HANDLER, "304"), 0) - during.get((REPORT_HANDLER, "304"), 0)
        assert revalidated == 1, (during, after)
        assert after.get((REPORT_HANDLER, "200")) == during.get((REPORT_HANDLER, "200")), after

        deleted = await client.delete(f"{indexer.api}/indexer/api/v1/index_report/{manifest.hash}")
        assert deleted.status_code == 204, deleted.text
        await asyncio.sleep(INDEXER_FRESHNESS + 0.2)
        gone = await client.get(report_url)
        assert gone.status_code == 404, gone.text + logs(indexer, matcher)


async def test_the_indexer_answers_304_only_for_a_finished_report_that_exists(
    pg_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
) -> None:
    root = shared_data / "layers/pypi-wheels-dist-info"
    manifest = await registry.push_image("pypi-304", [build_layer(files_from_dir(root))])
    key = secrets.token_bytes(32)
    updaters: dict[str, Any] = {"sets": []}
    async with (
        distributed(tmp_path, pg_dsn, updaters, key) as (indexer, _matcher),
        httpx.AsyncClient(auth=PSKAuth(key), timeout=60) as client,
    ):
        url = f"{indexer.api}/indexer/api/v1/index_report/{manifest.hash}"
        state = (await client.get(indexer.api + "/indexer/api/v1/index_state")).json()["state"]
        tag = {"If-None-Match": f'"{state}"'}
        missing = await client.get(url, headers=tag)
        assert missing.status_code == 404, missing.text  # Clair answered 304 here
        resp = await client.post(
            indexer.api + "/indexer/api/v1/index_report", json=manifest.to_json()
        )
        assert resp.status_code == 201, resp.text
        assert (await client.get(url, headers=tag)).status_code == 304
        assert (await client.delete(url)).status_code == 204
        assert (await client.get(url, headers=tag)).status_code == 404
