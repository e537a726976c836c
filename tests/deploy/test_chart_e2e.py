"""The chart as a cluster would run it (`make e2e-chart`, slow; `make image` first).

No API server can run here, so tests/fixtures/cluster.py plays the cluster's parts: it runs
every rendered Deployment's replicas from the built image with exactly the rendered args, env
(Secret values resolved) and ConfigMap mounted, forwards each Service's cluster address to the
pods its selector picks, and builds the NGINX config from the rendered Ingress. The tests then
talk only to NGINX: index real images pushed to the local registry (this project's own image
among them), read vulnerability reports of a loaded feed, receive the notifier's webhook and
page the notification, check that requests reached more than one replica, and scrape every
pod's /metrics with Prometheus' text parser.

The in-chart PostgreSQL StatefulSet is not run: its image cannot be pulled here. The pods use
the test's PostgreSQL through `externalDatabase`, as the ci/ external-database values do.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from clair_common.models import Layer, Manifest
from tests.fixtures.chart import CHART, RenderedChart, load_values, render_chart
from tests.fixtures.cluster import (
    IMAGE,
    NAMESPACE,
    Cluster,
    image_built,
    indexer_upstreams,
    running_chart,
    scrape,
)
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.kubelet import terminate
from tests.fixtures.registry import LocalRegistry

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

UPDATER = "osv/pypi"
# The notifier's first poll comes a poll_interval after start (1 minute at least).
NOTIFICATION_TIMEOUT = 300.0
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
GROUPS = {"indexer": "indexerv1", "matcher": "matcherv1", "combo": "indexerv1"}


class WebhookReceiver:
    """Where the notifier delivers: records each POSTed body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.Response(status=204)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[WebhookReceiver]:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        try:
            yield self
        finally:
            await runner.cleanup()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Not pytest's tmp_path: other pytest runs on the machine may prune it while pods use it."""
    if not image_built():
        pytest.fail(f"{IMAGE} is not built: run `make image` (make e2e-chart does)")
    path = Path(tempfile.mkdtemp(prefix="clair-chart-e2e-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _values(file: str, dsn: str, feeds: str, hook: str) -> dict[str, Any]:
    """A ci/ values file, pointed at this machine's image, database, feed and receiver."""
    values = load_values(CHART / "ci" / file)
    values["image"] = {"repository": IMAGE.split(":")[0], "pullPolicy": "Never"}
    values["postgresql"] = {"enabled": False}
    values["externalDatabase"] = {"connstring": dsn, "notifierConnstring": ""}
    values["config"] = {
        "log_level": "info",
        "updaters": {"sets": ["osv"], "config": {"osv": {"url": feeds}}},
        "notifier": {
            "poll_interval": "1m",
            "delivery_interval": "1m",
            "webhook": {"target": hook},
        },
    }
    return values


def _check_ingress_settings(cluster: Cluster) -> None:
    """The rendered Ingress asks for what the deploy/nginx config gives."""
    (rendered,) = cluster.chart.models("Ingress")
    annotations = rendered.metadata.annotations
    conf = (cluster.ingress.prefix / "nginx.conf").read_text()
    body = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert f"client_max_body_size {body};" in conf
    timeout = int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"])
    assert f"proxy_read_timeout {timeout // 60}m;" in conf


async def _push_own_image(registry: LocalRegistry) -> Manifest:
    """The built image, pushed by buildah as a registry client would; Clair's view of it."""
    target = registry.base_url.removeprefix("http://") + "/clair-py:e2e"
    await asyncio.to_thread(
        subprocess.run,
        ["buildah", "push", "--tls-verify=false", IMAGE, f"docker://{target}"],
        check=True,
        capture_output=True,
    )
    async with httpx.AsyncClient(timeout=30) as client:
        resp = await client.get(
            f"{registry.base_url}/v2/clair-py/manifests/e2e", headers={"Accept": MANIFEST_TYPES}
        )
    resp.raise_for_status()
    layers = [
        Layer(d["digest"], registry.blob_url("clair-py", d["digest"]))
        for d in resp.json()["layers"]
    ]
    return Manifest(resp.headers["Docker-Content-Digest"], layers)


async def _index(cluster: Cluster, manifests: dict[str, Manifest]) -> dict[str, dict[str, Any]]:
    """POST each manifest through the ingress, then read the reports back a few times."""
    reports = {}
    for name, manifest in manifests.items():
        resp = await cluster.client.post("/indexer/api/v1/index_report", json=manifest.to_json())
        assert resp.status_code == 201, resp.text + cluster.logs("indexer")
        reports[name] = resp.json()
        assert reports[name]["state"] == "IndexFinished", reports[name]
    for _ in range(6):  # more requests for round robin to spread
        for manifest in manifests.values():
            resp = await cluster.client.get(f"/indexer/api/v1/index_report/{manifest.hash}")
            assert resp.status_code == 200
    return reports


async def _vulnerable_packages(cluster: Cluster, manifest: Manifest) -> set[str]:
    """After the first feed load: the names of the image's vulnerable packages."""
    for _ in range(600):
        resp = await cluster.client.get("/matcher/api/v1/internal/update_operation")
        assert resp.status_code == 200, resp.text
        if resp.json().get(UPDATER):
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError("no update operation:\n" + cluster.logs("matcher"))
    resp = await cluster.client.get(f"/matcher/api/v1/vulnerability_report/{manifest.hash}")
    assert resp.status_code == 200, resp.text + cluster.logs()
    report = resp.json()
    return {report["packages"][p]["name"].lower() for p in report["package_vulnerabilities"]}


async def _check_pods(cluster: Cluster) -> None:
    """Every pod answers its liveness probe and serves metrics Prometheus can parse, with the
    dashboard's metric names among them; then stops cleanly on SIGTERM within its grace."""
    scraped: set[str] = set()
    for pod in cluster.pods:
        live = pod.container.liveness_probe.http_get
        probe = await cluster.client.get(pod.url(live.port) + live.path, auth=None)
        assert probe.status_code == 200, pod.name
        families = await asyncio.to_thread(scrape, pod)
        assert "pgxpool_max_conns" in families, pod.name
        if pod.component in GROUPS:
            counter = families[f"clair_http_{GROUPS[pod.component]}_request"]
            assert any(s.value > 0 for s in counter), (pod.name, counter)
        scraped.update(s.name for samples in families.values() for s in samples)
    missing = _dashboard_metric_names(cluster.chart) - scraped
    # Counted only once a request is refused with 429.
    missing.discard("clair_http_concurrencylimited_total")
    assert not missing, f"the dashboard queries metrics no pod exposes: {missing}"

    for pod in cluster.pods:
        code = await asyncio.to_thread(terminate, pod, pod.grace_seconds)
        assert code == 0, f"{pod.name} exited {code}:\n{pod.log_text()}"


def _dashboard_metric_names(chart: RenderedChart) -> set[str]:
    (configmap,) = [c for c in chart.of_kind("ConfigMap") if "clair.json" in c["data"]]
    dashboard = json.loads(configmap["data"]["clair.json"])
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            bare = re.sub(r'"[^"]*"', "", target["expr"])
            names.update(re.findall(r"\b((?:clair|pgxpool)_[a-z0-9_]+)", bare))
    return names


async def test_distributed_chart_runs_as_a_cluster_would(
    pg_dsn: str,
    workdir: Path,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    pypa_osv: list[dict[str, Any]],
) -> None:
    """ci/distributed-external-db-values.yaml: three indexers, two matchers, a notifier."""
    feed_server.put_pypi_osv(pypa_osv)
    layers = shared_data / "layers"
    manifests = {
        "pypi": await registry.push_image(
            "pypi", [build_layer(files_from_dir(layers / "pypi-wheels-dist-info"))]
        ),
        "debian": await registry.push_image(
            "debian",
            [build_layer(files_from_dir(layers / "debian-12-bookworm-minbase-debootstrap"))],
        ),
        "own": await _push_own_image(registry),
    }
    async with WebhookReceiver().running() as receiver:
        values = _values(
            "distributed-external-db-values.yaml", pg_dsn, feed_server.url, receiver.url
        )
        chart = render_chart(values, namespace=NAMESPACE)
        async with running_chart(chart, workdir) as cluster:
            _check_ingress_settings(cluster)
            replicas = [p.component for p in cluster.pods]
            assert sorted(replicas) == ["indexer"] * 3 + ["matcher"] * 2 + ["notifier"]
            unsigned = await cluster.client.get("/indexer/api/v1/index_state", auth=None)
            assert unsigned.status_code == 401

            reports = await _index(cluster, manifests)
            own = {p["name"] for p in reports["own"]["packages"].values()}
            # Debian's python3 from the base and this project's wheel from the image's venv.
            assert {"python3", "clair-py", "aiohttp"} <= own, sorted(own)
            debian = {p["name"] for p in reports["debian"]["packages"].values()}
            assert {"dpkg", "apt"} <= debian
            assert len(indexer_upstreams(cluster.ingress)) > 1

            vulnerable = await _vulnerable_packages(cluster, manifests["pypi"])
            assert {"django", "flask", "jinja2"} <= vulnerable, vulnerable
            own_report = f"/matcher/api/v1/vulnerability_report/{manifests['own'].hash}"
            assert (await cluster.client.get(own_report)).status_code == 200

            # The notifier's webhook: the first update operation added every vulnerability.
            try:
                await asyncio.wait_for(receiver.arrived.wait(), NOTIFICATION_TIMEOUT)
            except TimeoutError:
                raise AssertionError("no webhook delivery:\n" + cluster.logs("notifier")) from None
            delivery = receiver.bodies[0]
            assert delivery["callback"].startswith("http://clair-notifier:6060/notifier/api/v1/")
            page_url = f"/notifier/api/v1/notification/{delivery['notification_id']}"
            page = await cluster.client.get(page_url)
            assert page.status_code == 200, page.text
            affected = {n["manifest"] for n in page.json()["notifications"]}
            assert manifests["pypi"].hash in affected, affected
            assert (await cluster.client.delete(page_url)).status_code == 200

            await _check_pods(cluster)


async def test_combo_chart_runs_as_a_cluster_would(
    pg_dsn: str,
    workdir: Path,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    pypa_osv: list[dict[str, Any]],
) -> None:
    """ci/combo-values.yaml: two combo replicas behind every path."""
    feed_server.put_pypi_osv(pypa_osv)
    layers = shared_data / "layers"
    pypi = await registry.push_image(
        "pypi-combo", [build_layer(files_from_dir(layers / "pypi-wheels-dist-info"))]
    )
    values = _values("combo-values.yaml", pg_dsn, feed_server.url, "http://127.0.0.1:9/")
    chart = render_chart(values, namespace=NAMESPACE)
    async with running_chart(chart, workdir) as cluster:
        assert [p.component for p in cluster.pods] == ["combo", "combo"]
        await _index(cluster, {"pypi": pypi})
        assert len(indexer_upstreams(cluster.ingress)) == 2
        vulnerable = await _vulnerable_packages(cluster, pypi)
        assert {"django", "flask", "jinja2"} <= vulnerable, vulnerable
        await _check_pods(cluster)
