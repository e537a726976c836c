"""The chart as a cluster would run it (`make e2e-chart`, slow; `make image` first).

No API server can run here, so the test plays the cluster's parts (tests/fixtures/kubelet.py,
kube_proxy.py): it renders the chart with Helm's engine, runs every Deployment's replicas from
the built image with exactly the rendered args, env (Secret values resolved) and ConfigMap
mounted, forwards each Service's cluster address to the pods its selector picks, builds the
NGINX config from the rendered Ingress (path -> Service -> pods), and then talks only to
NGINX: index real images pushed to the local registry (this project's own image among them),
read vulnerability reports of a loaded feed, receive the notifier's webhook and page the
notification, and check that requests reached more than one indexer replica. Last, every
pod's /metrics is scraped and parsed with Prometheus' text parser.

The in-chart PostgreSQL StatefulSet is not run: its image cannot be pulled here. The pods use
the test's PostgreSQL through `externalDatabase`, as the ci/ external-database values do.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from clair_common.http.auth import sign
from clair_common.models import Layer, Manifest
from tests.fixtures.chart import CHART, RenderedChart, load_values, model, render_chart
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.kube_proxy import Endpoint, service_proxy
from tests.fixtures.kubelet import Kubelet, Pod, kubelet, terminate, wait_ready
from tests.fixtures.nginx import Ingress, nginx_ingress
from tests.fixtures.registry import LocalRegistry

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

IMAGE = "localhost/clair-py:0.1.0"
NAMESPACE = "clair"
ISSUER = "quay"  # one of the chart's default PSK issuers
UPDATER = "osv/pypi"
# The notifier's first poll and delivery come a poll_interval after start (1 minute at least).
NOTIFICATION_TIMEOUT = 300.0
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


class PSK(httpx.Auth):
    def __init__(self, key: bytes) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer " + sign(self._key, ISSUER)
        yield request


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
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        try:
            yield self
        finally:
            await runner.cleanup()


def _image_built() -> bool:
    done = subprocess.run(
        ["buildah", "inspect", "--type", "image", IMAGE], capture_output=True, check=False
    )
    return done.returncode == 0


def _values(dsn: str, feeds: str, hook: str) -> dict[str, Any]:
    """ci/distributed-external-db-values.yaml, pointed at this machine's parts."""
    values = load_values(CHART / "ci" / "distributed-external-db-values.yaml")
    values["image"] = {"repository": IMAGE.split(":")[0], "pullPolicy": "Never"}
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


def _selected(selector: dict[str, str], pods: list[Pod]) -> list[Pod]:
    return [p for p in pods if selector.items() <= p.labels.items()]


def _endpoints(
    chart: RenderedChart, service_name: str, port_name: str, pods: list[Pod]
) -> list[Endpoint]:
    """The Service port's endpoints: its targetPort on each pod its selector picks."""
    service = model(chart.get("Service", service_name))
    (port,) = [p for p in service.spec.ports if p.name == port_name]
    selected = _selected(service.spec.selector, pods)
    return [Endpoint(p.ip, p.ports[port.target_port]) for p in selected]


def _ingress_upstreams(chart: RenderedChart, pods: list[Pod]) -> dict[str, list[str]]:
    """deploy/nginx's upstream lists from the rendered Ingress: path -> Service -> pods."""
    (ingress,) = chart.models("Ingress")
    upstreams = {}
    for rule in ingress.spec.rules:
        for path in rule.http.paths:
            assert path.path_type == "Prefix"
            backend = path.backend.service
            endpoints = _endpoints(chart, backend.name, backend.port.name, pods)
            upstreams[path.path.strip("/")] = [f"{e.host}:{e.port}" for e in endpoints]
    return upstreams


def _check_ingress_settings(chart: RenderedChart, ingress: Ingress) -> None:
    """The rendered Ingress asks for what the deploy/nginx config gives."""
    (rendered,) = chart.models("Ingress")
    annotations = rendered.metadata.annotations
    conf = (ingress.prefix / "nginx.conf").read_text()
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
    digest = resp.headers["Docker-Content-Digest"]
    manifest = resp.json()
    layers = [
        Layer(d["digest"], registry.blob_url("clair-py", d["digest"])) for d in manifest["layers"]
    ]
    return Manifest(digest, layers)


async def _start_cluster(
    stack: AsyncExitStack, chart: RenderedChart, workdir: Path
) -> tuple[Kubelet, Ingress]:
    net = f"127.{random.randint(100, 199)}"
    services = [model(s) for s in chart.of_kind("Service")]
    cluster_ips = {s.metadata.name: f"{net}.1.{n}" for n, s in enumerate(services, 1)}
    hosts = {}
    for name, ip in cluster_ips.items():
        for suffix in ("", f".{NAMESPACE}", f".{NAMESPACE}.svc", f".{NAMESPACE}.svc.cluster.local"):
            hosts[name + suffix] = ip
    runner = stack.enter_context(kubelet(chart, IMAGE, workdir / "pods", hosts))
    n = 0
    for deployment in chart.of_kind("Deployment"):
        for replica in range(deployment["spec"]["replicas"]):
            n += 1
            runner.start(deployment, replica, f"{net}.2.{n}")
    for service in services:
        ports = [
            (p.port, _endpoints(chart, service.metadata.name, p.name, runner.pods))
            for p in service.spec.ports
        ]
        await stack.enter_async_context(service_proxy(cluster_ips[service.metadata.name], ports))
    await asyncio.gather(*(asyncio.to_thread(wait_ready, pod) for pod in runner.pods))
    ingress = stack.enter_context(nginx_ingress(workdir, _ingress_upstreams(chart, runner.pods)))
    return runner, ingress


async def _wait_for_update(client: httpx.AsyncClient, runner: Kubelet) -> None:
    for _ in range(600):
        resp = await client.get("/matcher/api/v1/internal/update_operation")
        assert resp.status_code == 200, resp.text
        if resp.json().get(UPDATER):
            return
        await asyncio.sleep(0.5)
    raise AssertionError("no update operation:\n" + _logs(runner, "matcher"))


def _logs(runner: Kubelet, component: str = "") -> str:
    return "\n".join(
        f"--- {p.name}\n{p.log_text()}" for p in runner.pods if component in p.component
    )


def _scrape(pod: Pod) -> dict[str, list[Any]]:
    """Family name -> samples, from the pod's /metrics through Prometheus' own parser."""
    with urllib.request.urlopen(pod.url("introspection") + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Not pytest's tmp_path: other pytest runs on the machine may prune it while pods use it."""
    path = Path(tempfile.mkdtemp(prefix="clair-chart-e2e-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_chart_runs_as_a_cluster_would(
    pg_dsn: str,
    workdir: Path,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    pypa_osv: list[dict[str, Any]],
) -> None:
    if not _image_built():
        pytest.fail(f"{IMAGE} is not built: run `make image` (make e2e-chart does)")
    feed_server.put_pypi_osv(pypa_osv)
    pypi = await registry.push_image(
        "pypi", [build_layer(files_from_dir(shared_data / "layers/pypi-wheels-dist-info"))]
    )
    debian = await registry.push_image(
        "debian",
        [
            build_layer(
                files_from_dir(shared_data / "layers/debian-12-bookworm-minbase-debootstrap")
            )
        ],
    )
    own = await _push_own_image(registry)

    async with AsyncExitStack() as stack:
        receiver = await stack.enter_async_context(WebhookReceiver().running())
        chart = render_chart(_values(pg_dsn, feed_server.url, receiver.url), namespace=NAMESPACE)
        secret = {k: v for s in chart.of_kind("Secret") for k, v in s["stringData"].items()}
        key = base64.b64decode(secret["psk-key"])
        runner, ingress = await _start_cluster(stack, chart, workdir)
        _check_ingress_settings(chart, ingress)
        components = sorted({p.component for p in runner.pods})
        assert components == ["indexer", "matcher", "notifier"]
        assert len([p for p in runner.pods if p.component == "indexer"]) == 3

        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=ingress.url, auth=PSK(key), timeout=600)
        )
        unsigned = await client.get("/indexer/api/v1/index_state", auth=None)
        assert unsigned.status_code == 401

        reports = {}
        for name, manifest in (("pypi", pypi), ("debian", debian), ("own", own)):
            resp = await client.post("/indexer/api/v1/index_report", json=manifest.to_json())
            assert resp.status_code == 201, resp.text + _logs(runner, "indexer")
            reports[name] = resp.json()
            assert reports[name]["state"] == "IndexFinished", reports[name]
        for _ in range(6):  # read them back: more requests for round robin to spread
            for manifest in (pypi, debian, own):
                resp = await client.get(f"/indexer/api/v1/index_report/{manifest.hash}")
                assert resp.status_code == 200

        packages = {p["name"] for p in reports["own"]["packages"].values()}
        # Debian's python3 from the base and this project's wheel from the image's venv.
        assert {"python3", "clair-py", "aiohttp"} <= packages, sorted(packages)
        assert {p["name"] for p in reports["debian"]["packages"].values()} >= {"dpkg", "apt"}

        await _wait_for_update(client, runner)
        resp = await client.get(f"/matcher/api/v1/vulnerability_report/{pypi.hash}")
        assert resp.status_code == 200, resp.text + _logs(runner, "matcher")
        vulnerable = {
            report_pkg["name"]
            for pkg_id in resp.json()["package_vulnerabilities"]
            for report_pkg in [resp.json()["packages"][pkg_id]]
        }
        assert {"django", "flask", "jinja2"} <= {n.lower() for n in vulnerable}, vulnerable
        resp = await client.get(f"/matcher/api/v1/vulnerability_report/{own.hash}")
        assert resp.status_code == 200, resp.text

        # The notifier's webhook: the first update operation added every vulnerability.
        try:
            await asyncio.wait_for(receiver.arrived.wait(), NOTIFICATION_TIMEOUT)
        except TimeoutError:
            raise AssertionError("no webhook delivery:\n" + _logs(runner, "notifier")) from None
        delivery = receiver.bodies[0]
        assert delivery["callback"].startswith("http://clair-notifier:6060/notifier/api/v1/")
        page = await client.get(f"/notifier/api/v1/notification/{delivery['notification_id']}")
        assert page.status_code == 200, page.text
        affected = {n["manifest"] for n in page.json()["notifications"]}
        assert pypi.hash in affected, affected
        ack = await client.delete(f"/notifier/api/v1/notification/{delivery['notification_id']}")
        assert ack.status_code == 200, ack.text

        # Round robin reached more than one indexer replica.
        access = ingress.access_log.read_text()
        upstreams = set(
            re.findall(r'"(?:GET|POST) /indexer/\S+ [^"]*" \d+ \d+ upstream=(\S+)', access)
        )
        assert len(upstreams) > 1, access

        # Every pod's liveness probe and metrics, parsed as Prometheus would.
        for pod in runner.pods:
            live = pod.container.liveness_probe.http_get
            probe = await client.get(pod.url(live.port) + live.path, auth=None)
            assert probe.status_code == 200, pod.name
            families = _scrape(pod)
            assert "pgxpool_max_conns" in families, pod.name
            group = {"indexer": "indexerv1", "matcher": "matcherv1", "notifier": "notificationv1"}
            if pod.component != "notifier":
                counter = families[f"clair_http_{group[pod.component]}_request"]
                assert any(s.value > 0 for s in counter), (pod.name, counter)
        dashboard_names = _dashboard_metric_names(chart)
        scraped = {
            n for pod in runner.pods for f in _scrape(pod).values() for n in (s.name for s in f)
        }
        missing = dashboard_names - scraped - {"clair_http_concurrencylimited_total"}
        assert not missing, f"dashboard queries metrics no pod exposes: {missing}"

        # SIGTERM, as the kubelet stops a pod: each exits cleanly within its grace period.
        grace = chart.of_kind("Deployment")[0]["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
        for pod in runner.pods:
            codes = await asyncio.to_thread(terminate, pod, grace)
            assert codes == 0, f"{pod.name} exited {codes}:\n{pod.log_text()}"


def _dashboard_metric_names(chart: RenderedChart) -> set[str]:
    (configmap,) = [c for c in chart.of_kind("ConfigMap") if "clair.json" in c["data"]]
    dashboard = json.loads(configmap["data"]["clair.json"])
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            bare = re.sub(r'"[^"]*"', "", target["expr"])
            names.update(re.findall(r"\b((?:clair|pgxpool)_[a-z0-9_]+)", bare))
    return names
