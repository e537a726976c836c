"""End to end through the ingress: NGINX (deploy/nginx) in front of two indexers and a matcher.

Every API request goes through nginx, the matcher's own calls to the indexers included (its
`indexer_addr` is the ingress). No notifier exists yet, so the config leaves it out and
/notifier/ gets the ingress's 404. Evidence of which replica did what comes from each
process's own /metrics on its introspection port.
"""

from __future__ import annotations

import asyncio
import gzip
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from clair_common.http.auth import sign
from clair_common.models import Layer, Manifest
from tests.fixtures.combo import findings
from tests.fixtures.distributed import ISSUER, PSKAuth, logs, wait_for_update, write_config
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir, sha256_digest
from tests.fixtures.nginx import NOT_FOUND, RENDER, nginx_binary, nginx_ingress, render_config
from tests.fixtures.server import ClairProcess, clair_server, free_port, wait_ready

INDEX = "/indexer/api/v1/index_report"
STATE = "/indexer/api/v1/index_state"


@asynccontextmanager
async def slow_blobs(blobs: dict[str, bytes], hits: dict[str, int]) -> AsyncIterator[str]:
    """Serves layer blobs slowly, so that the first scan is still running when the second
    POST arrives, and counts the downloads; yields the base URL."""

    async def blob(request: web.Request) -> web.Response:
        digest = request.match_info["digest"]
        hits[digest] = hits.get(digest, 0) + 1
        await asyncio.sleep(0.5)
        return web.Response(body=blobs[digest], content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/blobs/{digest}", blob)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def metric(proc: ClairProcess, name: str, **labels: str) -> float:
    """The sum of a process's samples of `name` whose labels include `labels`."""
    async with httpx.AsyncClient() as client:
        resp = await client.get(proc.introspection + "/metrics")
    resp.raise_for_status()
    return sum(
        sample.value
        for family in text_string_to_metric_families(resp.text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def requests_to(proc: ClairProcess, handler: str, method: str) -> float:
    return await metric(proc, "clair_http_indexerv1_request_total", handler=handler, method=method)


async def test_ingress_routes_to_replicas(
    pg_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    shared_data: Path,
    pypa_osv: list[dict[str, Any]],
) -> None:
    feed_server.put_pypi_osv(pypa_osv)
    updaters = {"sets": ["osv"], "config": {"osv": {"url": feed_server.url}}}
    layer = build_layer(files_from_dir(shared_data / "layers/pypi-wheels-dist-info"))
    digest = sha256_digest(layer)
    hits: dict[str, int] = {}
    key = secrets.token_bytes(32)
    args = write_config(tmp_path, pg_dsn, updaters, key)
    # The matcher must know the ingress URL before nginx, which needs the matcher's port.
    port = free_port()
    ingress_url = f"http://127.0.0.1:{port}"
    matcher_env = {"CLAIR_MATCHER__INDEXER_ADDR": ingress_url}

    async with slow_blobs({digest: layer}, hits) as blobs_url:
        manifest = Manifest(
            sha256_digest(b"ingress" + layer), [Layer(digest, blobs_url + "/blobs/" + digest)]
        )
        with (
            clair_server(tmp_path, mode="indexer", args=args, name="indexer-a") as a,
            clair_server(tmp_path, mode="indexer", args=args, name="indexer-b") as b,
            clair_server(tmp_path, mode="matcher", args=args, env=matcher_env, name="matcher") as m,
            nginx_ingress(
                tmp_path, {"indexer": [a.api, b.api], "matcher": [m.api]}, port=port
            ) as ingress,
        ):
            procs = (a, b, m, ingress)
            await asyncio.gather(*(asyncio.to_thread(wait_ready, p) for p in (a, b, m)))
            async with httpx.AsyncClient(
                base_url=ingress.url, auth=PSKAuth(key), timeout=60
            ) as client:
                # Authorization passes through untouched: the services judge the token.
                for path in (STATE, f"/matcher/api/v1/vulnerability_report/{manifest.hash}"):
                    unsigned = await client.get(path, auth=None)
                    assert unsigned.status_code == 401, unsigned.text + logs(*procs)
                    forged = "Bearer " + sign(secrets.token_bytes(32), ISSUER)
                    wrong = await client.get(path, auth=None, headers={"Authorization": forged})
                    assert wrong.status_code == 401, wrong.text + logs(*procs)
                # No notifier in this deployment: left out of the config.
                notifier = await client.get("/notifier/api/v1/notification/x")
                assert notifier.status_code == 404 and notifier.content == NOT_FOUND

                await wait_for_update(client, m, ingress.url)

                # The same manifest twice at once: round robin hands one POST to each replica,
                # and the advisory lock lets only one of them fetch and scan the layer.
                first, second = await asyncio.gather(
                    client.post(INDEX, json=manifest.to_json()),
                    client.post(INDEX, json=manifest.to_json()),
                )
                assert (first.status_code, second.status_code) == (201, 201), logs(*procs)
                assert first.json() == second.json()
                assert first.json()["state"] == "IndexFinished", first.text
                assert hits == {digest: 1}, hits
                posts = [
                    await requests_to(p, "/indexer/api/v1/index_report", "post") for p in (a, b)
                ]
                assert posts == [1, 1], logs(*procs)
                downloads = [
                    await metric(p, "clair_fetcher_requests_total", result="downloaded")
                    for p in (a, b)
                ]
                assert sum(downloads) == 1, downloads

                # Both replicas take plain API traffic too.
                before = [await requests_to(p, STATE, "get") for p in (a, b)]
                for _ in range(6):
                    resp = await client.get(STATE)
                    assert resp.status_code == 200, resp.text + logs(*procs)
                after = [await requests_to(p, STATE, "get") for p in (a, b)]
                served = [x - y for x, y in zip(after, before, strict=True)]
                assert sum(served) == 6 and all(served), (served, ingress.log_text())

                report_path = f"/matcher/api/v1/vulnerability_report/{manifest.hash}"
                plain = await client.get(report_path, headers={"Accept-Encoding": "identity"})
                assert plain.status_code == 200, plain.text + logs(*procs)
                assert "content-encoding" not in plain.headers
                report = plain.json()
                assert report["manifest_hash"] == manifest.hash
                assert any(findings(report).values()), "no vulnerabilities found"
                etag = plain.headers.get("etag", "")
                assert etag.startswith('"'), plain.headers  # present, and not weakened (W/)

                again = await client.get(report_path, headers={"If-None-Match": etag})
                assert again.status_code == 304, again.text + logs(*procs)
                assert again.headers.get("etag") == etag

                # The matcher's own gzip passes through (httpx would decode it: read it raw).
                async with client.stream(
                    "GET", report_path, headers={"Accept-Encoding": "gzip"}
                ) as packed:
                    raw = b"".join([chunk async for chunk in packed.aiter_raw()])
                assert packed.status_code == 200, logs(*procs)
                assert packed.headers.get("content-encoding") == "gzip", packed.headers
                assert packed.headers.get("etag") == etag
                assert orjson.loads(gzip.decompress(raw)) == report

            assert ingress.errors() == [], ingress.log_text()


def test_rendered_config_with_every_service_is_valid(tmp_path: Path) -> None:
    """The e2e test above has no notifier: check its sections render into a config nginx takes."""
    conf = tmp_path / "nginx.conf"
    upstreams = {"indexer": ["127.0.0.1:1"], "matcher": ["127.0.0.1:2"], "notifier": ["[::1]:3"]}
    render_config(conf, free_port(), upstreams)
    text = conf.read_text()
    assert "location /notifier/" in text and "server [::1]:3;" in text
    check = subprocess.run(
        [nginx_binary(), "-t", "-e", "stderr", "-p", f"{tmp_path}/", "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    # Addresses land inside directives: anything that could end one is refused.
    bad = subprocess.run(
        [sys.executable, str(RENDER), "--listen", "8080", "--indexer", "a:1; include /x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "bad indexer address" in bad.stderr, bad.stderr
