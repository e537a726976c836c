"""End to end, distributed: `clair serve --mode indexer` and `--mode matcher` as two processes.

The matcher fetches index reports from the indexer over HTTP (`RemoteIndexer`), with both
listeners checking PSK-signed tokens. Its vulnerability report for an image must equal the one
combo mode gives on its own database, from the same feeds (database row ids aside). A notifier
service wired as in notifier mode (`RemoteMatcher`, `RemoteIndexer`) notifies that image.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from clair_common.config import service_view, validate_document
from clair_common.models import Manifest
from clair_common.remote import RemoteIndexer, RemoteMatcher
from clair_common.runtime import ServiceContext
from clair_notifier.entry import start as start_notifier
from tests.fixtures.combo import findings, running_combo
from tests.fixtures.distributed import (
    ISSUER,
    UPDATER,
    PSKAuth,
    logs,
    pypi_image_and_feed,
    wait_for_update,
    write_config,
)
from tests.fixtures.feeds import FeedServer
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.server import ClairProcess, clair_server, wait_ready


@asynccontextmanager
async def distributed(
    workdir: Path, dsn: str, updaters: dict[str, Any], key: bytes
) -> AsyncIterator[tuple[ClairProcess, ClairProcess]]:
    """An indexer process and a matcher process pointed at it, both ready."""
    args = write_config(workdir, dsn, updaters, key)
    with clair_server(workdir, mode="indexer", args=args, name="indexer") as indexer:
        env = {"CLAIR_MATCHER__INDEXER_ADDR": indexer.api}
        with clair_server(workdir, mode="matcher", args=args, env=env, name="matcher") as matcher:
            await asyncio.gather(
                asyncio.to_thread(wait_ready, indexer), asyncio.to_thread(wait_ready, matcher)
            )
            yield indexer, matcher


async def notify_remotely(
    dsn: str, key: bytes, indexer: ClairProcess, matcher: ClairProcess
) -> list[dict[str, Any]]:
    """A notifier service whose peers are the processes, over PSK-signed HTTP (as in notifier
    mode): one poll, and the notifications of the set it stored."""
    psk = {"key": base64.b64encode(key).decode(), "iss": [ISSUER]}
    hook = {"target": "http://127.0.0.1:9/", "callback": "http://clair/notifier/api/v1/"}
    config = validate_document({"auth": {"psk": psk}, "notifier": {"webhook": hook}}, "test")
    ctx = ServiceContext(
        config=service_view(config, "notifier"),
        dsn=dsn,
        migrations=True,
        indexer=RemoteIndexer(indexer.api, key),
        matcher=RemoteMatcher(matcher.api, key),
    )
    notifier = await start_notifier(ctx)
    try:
        poll = await notifier.poller.run_once()
        assert list(poll.outcomes.values()) == ["notified"], poll.errors
        (set_id,) = await notifier.api.store.pending()
        page = await notifier.api.page(set_id)
        return list(page["notifications"])
    finally:
        await notifier.close()


async def combo_report(
    dsn: str, cache: Path, updaters: dict[str, Any], manifest: Manifest
) -> dict[str, Any]:
    async with running_combo(dsn, cache, updaters=updaters) as combo:
        run = await combo.run_updaters()
        assert run.outcomes[UPDATER] == "updated", run.errors
        await combo.index(manifest)
        return await combo.vulnerability_report(manifest.hash)


async def test_matcher_process_reports_as_combo_does(
    pg_dsn: str,
    second_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    pypa_osv: list[dict[str, Any]],
) -> None:
    updaters, manifest = await pypi_image_and_feed(
        feed_server, registry, shared_data, pypa_osv, "pypi-distributed"
    )
    key = secrets.token_bytes(32)

    async def from_processes() -> dict[str, Any]:
        async with (
            distributed(tmp_path, pg_dsn, updaters, key) as (indexer, matcher),
            httpx.AsyncClient(auth=PSKAuth(key), timeout=60) as client,
        ):
            report_url = f"{matcher.api}/matcher/api/v1/vulnerability_report/{manifest.hash}"
            # PSK auth is on: an unsigned request is refused, so the matcher's own calls to the
            # indexer below succeed only because RemoteIndexer signs them.
            unsigned = await client.get(report_url, auth=None)
            assert unsigned.status_code == 401, unsigned.text + logs(indexer, matcher)

            await wait_for_update(client, matcher)
            resp = await client.post(
                indexer.api + "/indexer/api/v1/index_report", json=manifest.to_json()
            )
            assert resp.status_code == 201, resp.text + logs(indexer, matcher)
            assert resp.json()["state"] == "IndexFinished", resp.text

            resp = await client.get(report_url)
            assert resp.status_code == 200, resp.text + logs(indexer, matcher)
            etag = resp.headers.get("etag")
            assert etag, resp.headers
            again = await client.get(report_url, headers={"If-None-Match": etag})
            assert again.status_code == 304, again.text + logs(indexer, matcher)
            assert again.headers.get("etag") == etag

            unknown = "sha256:" + "0" * 64
            missing = await client.get(
                f"{matcher.api}/matcher/api/v1/vulnerability_report/{unknown}"
            )
            assert missing.status_code == 404, missing.text + logs(indexer, matcher)
            assert missing.json() == {
                "code": "not-found",
                "message": f'index report for manifest "{unknown}" not found',
            }
            report: dict[str, Any] = resp.json()
            # First update operation of the feed: everything it holds is "added", and the
            # indexed image is affected.
            notes = await notify_remotely(pg_dsn, key, indexer, matcher)
            assert {(n["manifest"], n["reason"]) for n in notes} == {(manifest.hash, "added")}
        # Stopped by now (SIGTERM): a clean shutdown releases every connection it opened.
        for proc in (indexer, matcher):
            assert proc.proc.returncode == 0, logs(proc)
            assert "Unclosed" not in proc.log_text(), logs(proc)
        return report

    # Independent deployments on separate databases: run them side by side.
    got, want = await asyncio.gather(
        from_processes(), combo_report(second_dsn, tmp_path / "combo-cache", updaters, manifest)
    )
    assert got["manifest_hash"] == want["manifest_hash"] == manifest.hash
    distributed_findings = findings(got)
    assert any(distributed_findings.values()), "no vulnerabilities found"
    assert distributed_findings == findings(want)
    assert {(p["name"], p["version"]) for p in got["packages"].values()} == {
        (p["name"], p["version"]) for p in want["packages"].values()
    }
