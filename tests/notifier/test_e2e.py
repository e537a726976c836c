"""End to end in combo mode: an image indexed before any update, the PyPA database loaded by the
real osv updater from the local feed server, the notifier's poll and webhook delivery to a
subscriber on 127.0.0.1, and the subscriber paging through the set at the callback URL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from clair_common.models import SEVERITY_RANK
from clair_notifier.entry import RunningNotifier
from tests.fixtures.combo import Combo, running_combo
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry
from tests.notifier.receiver import WebhookReceiver

CALLBACK = "http://clair/notifier/api/v1/notification/"
Advisory = dict[str, Any]


async def combo_with_notifier(
    pg_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    receiver: WebhookReceiver,
    **notifier: Any,
) -> AsyncIterator[Combo]:
    updaters = {"sets": ["osv"], "config": {"osv": {"url": feed_server.url}}}
    extra = {
        "notifier": {
            "webhook": {"target": receiver.url, "callback": CALLBACK},
            **notifier,
        }
    }
    async with running_combo(
        pg_dsn, tmp_path / "cache", updaters=updaters, extra_config=extra
    ) as combo:
        yield combo


@pytest.fixture
async def combo(
    pg_dsn: str, tmp_path: Path, feed_server: FeedServer, receiver: WebhookReceiver
) -> AsyncIterator[Combo]:
    async for c in combo_with_notifier(pg_dsn, tmp_path, feed_server, receiver):
        yield c


@pytest.fixture
async def combo_no_summary(
    pg_dsn: str, tmp_path: Path, feed_server: FeedServer, receiver: WebhookReceiver
) -> AsyncIterator[Combo]:
    async for c in combo_with_notifier(
        pg_dsn, tmp_path, feed_server, receiver, disable_summary=True
    ):
        yield c


def notifier_of(combo: Combo) -> RunningNotifier:
    (service,) = [s for s in combo.services if s.name == "notifier"]
    assert isinstance(service, RunningNotifier)
    return service


async def index_wheels(combo: Combo, registry: LocalRegistry, shared_data: Path) -> str:
    root = shared_data / "layers/pypi-wheels-dist-info"
    manifest = await registry.push_image("notifier-e2e", [build_layer(files_from_dir(root))])
    await combo.index(manifest)
    return manifest.hash


async def update(combo: Combo, feed_server: FeedServer, advisories: list[Advisory]) -> None:
    feed_server.put_pypi_osv(advisories)
    run = await combo.run_updaters()
    assert run.outcomes.get("osv/pypi") == "updated", run.errors


async def all_pages(combo: Combo, callback: str, size: int) -> list[dict[str, Any]]:
    """What a subscriber does: GET the callback, then `next` until there is none."""
    out: list[dict[str, Any]] = []
    params: dict[str, str] = {"page_size": str(size)}
    while True:
        resp = await combo.client.get(callback, params=params)
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert doc["page"]["size"] == size and len(doc["notifications"]) <= size
        out += doc["notifications"]
        if "next" not in doc["page"]:
            return out
        assert doc["page"]["next"] == doc["notifications"][-1]["id"]
        params["next"] = doc["page"]["next"]


async def test_webhook_flow_summary_mode(
    combo: Combo,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    pypa_osv: list[Advisory],
    receiver: WebhookReceiver,
) -> None:
    digest = await index_wheels(combo, registry, shared_data)  # before any update
    await update(combo, feed_server, pypa_osv)
    notifier = notifier_of(combo)

    poll = await notifier.poller.run_once()
    assert list(poll.outcomes.values()) == ["notified"], poll.errors
    delivered = await notifier.delivery.run_once()
    assert len(delivered.delivered) == 1, delivered.failed
    (hook,) = receiver.deliveries
    set_id = hook.body["notification_id"]
    assert hook.body == {"notification_id": set_id, "callback": CALLBACK + set_id}

    # Summary mode: one notification for the one affected manifest, its most severe vuln.
    (note,) = await all_pages(combo, hook.body["callback"], 1)
    assert note["manifest"] == digest and note["reason"] == "added"
    report = await combo.vulnerability_report(digest)
    vulns = list(report["vulnerabilities"].values())
    worst = max(SEVERITY_RANK[v["normalized_severity"]] for v in vulns)
    summary = note["vulnerability"]
    assert summary["name"] in {v["name"] for v in vulns}
    assert SEVERITY_RANK[summary["severity"]] == worst
    assert set(summary) >= {"name", "description", "package", "severity", "links"}
    assert summary["package"]["name"] in {v["package"]["name"] for v in vulns}

    # Nothing new: the next poll finds the operation receipted.
    assert (await notifier.poller.run_once()).outcomes == {}
    assert (await combo.client.delete(CALLBACK + set_id)).status_code == 200
    assert await notifier.api.store.status(uuid.UUID(set_id)) == "deleted"

    # The feed drops an advisory the image has: a new operation, a "removed" notification.
    gone = next(a for a in pypa_osv if a["id"] in {v["name"] for v in vulns})
    await update(combo, feed_server, [a for a in pypa_osv if a is not gone])
    poll = await notifier.poller.run_once()
    assert list(poll.outcomes.values()) == ["notified"], poll.errors
    assert (await notifier.delivery.run_once()).delivered
    second = receiver.deliveries[1].body
    assert second["notification_id"] != set_id
    (removed,) = await all_pages(combo, second["callback"], 10)
    assert removed["manifest"] == digest and removed["reason"] == "removed"
    assert removed["vulnerability"]["name"] == gone["id"]


async def test_background_loops_without_summary(
    combo_no_summary: Combo,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    pypa_osv: list[Advisory],
    receiver: WebhookReceiver,
) -> None:
    combo = combo_no_summary
    digest = await index_wheels(combo, registry, shared_data)
    await update(combo, feed_server, pypa_osv)
    notifier = notifier_of(combo)
    # Test-only: the config floors both intervals at a minute; the loops take any interval.
    notifier.loops.poll_interval = timedelta(milliseconds=100)
    notifier.loops.delivery_interval = timedelta(milliseconds=100)
    await notifier.ready()
    async with asyncio.timeout(60):
        (hook,) = await receiver.wait(1)

    # One notification per (manifest, vulnerability): exactly what the report lists.
    notes = await all_pages(combo, hook.body["callback"], 3)
    report = await combo.vulnerability_report(digest)
    assert len(notes) > 3
    assert len({n["id"] for n in notes}) == len(notes)
    assert {(n["manifest"], n["reason"]) for n in notes} == {(digest, "added")}
    assert Counter(n["vulnerability"]["name"] for n in notes) == Counter(
        v["name"] for v in report["vulnerabilities"].values()
    )
    await asyncio.sleep(0.3)  # more ticks: nothing new to notify or deliver
    assert len(receiver.deliveries) == 1
