"""The fault probes again, through `make up`'s shape: NGINX rendered from deploy/nginx in front
of two indexer processes and a matcher, on a PostgreSQL of the module's own.

What a client behind the ingress sees is Clair's answer, never NGINX's: 503 with Clair's error
body while the database is down, the stored 400 of a layer host that drips, no metric series per
junk method, and no 502 while one indexer replica drains after SIGTERM (the other serves);
the same for one of two matcher replicas (`make up MATCHERS=2`), started by that test alone.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import signal
import string
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import yaml
from clair_dev.embedded_pg import EmbeddedPostgres, dsn_with_database, ensure_database_sync
from prometheus_client.parser import text_string_to_metric_families

from clair_common.config.models import Indexer
from clair_common.db.locks import lock_key
from clair_common.models import IndexReport, IndexState, Package, Vulnerability
from clair_matcher.store import MatcherStore
from tests.faults.test_database_down import until
from tests.fixtures.faulty import FaultyOrigin
from tests.fixtures.images import build_layer, sha256_digest
from tests.fixtures.nginx import Ingress, nginx_ingress, render_config
from tests.fixtures.server import ClairProcess, clair_server, free_port, wait_ready

INDEX = "/indexer/api/v1/index_report"
STATE = "/indexer/api/v1/index_state"
CHART_VALUES = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "clair" / "values.yaml"


@dataclass
class Deployment:
    pg: EmbeddedPostgres
    dsn: str
    indexers: tuple[ClairProcess, ClairProcess]
    matcher: ClairProcess
    ingress: Ingress

    @property
    def services(self) -> tuple[ClairProcess, ...]:
        return (*self.indexers, self.matcher)

    def logs(self) -> str:
        return "".join(f"\n--- {p.log.stem} ---\n{p.log_text()}" for p in self.services)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    workdir = Path(tempfile.mkdtemp(prefix="clair-test-ingress-faults-"))
    workdir.chmod(0o755)  # the server account must traverse it when tests run as root
    # Unix socket only: its restart cannot find a TCP port taken by another test meanwhile.
    settings = {"listen_addresses": ""}
    pg = EmbeddedPostgres(workdir / "pg", port=free_port(), fast=True, settings=settings)
    try:
        pg.start()
        ensure_database_sync(pg.socket_dsn, "clair")
        dsn = dsn_with_database(pg.socket_dsn, "clair")
        port = free_port()  # the matcher reaches the indexers through the ingress
        shared = {
            "CLAIR_DATABASE_CONNECT_TIMEOUT": "2s",
            "CLAIR_DATABASE_STATEMENT_TIMEOUT": "3s",
            "CLAIR_SHUTDOWN_GRACE_PERIOD": "60s",
        }
        indexer = {
            **shared,
            "CLAIR_INDEXER__CONNSTRING": dsn,
            "CLAIR_INDEXER__MIGRATIONS": "true",
            "CLAIR_INDEXER__LAYER_MIN_RATE": "1000",
            "CLAIR_INDEXER__LAYER_RATE_WINDOW": "1s",
        }
        matcher = {
            **shared,
            "CLAIR_MATCHER__CONNSTRING": dsn,
            "CLAIR_MATCHER__MIGRATIONS": "true",
            "CLAIR_MATCHER__DISABLE_UPDATERS": "true",
            "CLAIR_MATCHER__INDEXER_ADDR": f"http://127.0.0.1:{port}",
        }
        with clair_server(workdir, mode="indexer", env=indexer, name="indexer-1") as first:
            wait_ready(first)  # its migrations first, as `make up` does
            with (
                clair_server(workdir, mode="indexer", env=indexer, name="indexer-2") as second,
                clair_server(workdir, mode="matcher", env=matcher, name="matcher") as m,
                nginx_ingress(
                    workdir, {"indexer": [first.api, second.api], "matcher": [m.api]}, port=port
                ) as ingress,
            ):
                wait_ready(second)
                wait_ready(m)
                yield Deployment(pg, dsn, (first, second), m, ingress)
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def nginx_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert match, value
    return int(match[1]) * units[match[2] or "s"]


def test_ingress_waits_longer_than_a_layer_download_may_take(tmp_path: Path) -> None:
    """A layer host that is slow but above the floor is cut off by `indexer.layer_fetch_timeout`
    with Clair's 400; an ingress giving up first would answer 504 instead, while the indexer
    still works. Both ingresses (deploy/nginx, the chart's) outwait the default deadline."""
    deadline = Indexer().layer_fetch_timeout
    conf = tmp_path / "nginx.conf"
    render_config(conf, free_port(), {"indexer": ["127.0.0.1:1"]})
    location = conf.read_text().split("location /indexer/ {", 1)[1].split("}", 1)[0]
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        match = re.search(rf"{directive} (\w+);", location)
        assert match, location
        assert timedelta(seconds=nginx_seconds(match[1])) > deadline, directive
    values = yaml.safe_load(CHART_VALUES.read_text())
    assert timedelta(seconds=values["ingress"]["proxyReadTimeoutSeconds"]) > deadline


async def test_junk_methods_add_no_series(deployment: Deployment) -> None:
    paths = [STATE, INDEX, "/matcher/api/v1/internal/update_operation", "/indexer/junk"]
    rng = random.Random(15)

    async def junk(http: httpx.AsyncClient, count: int) -> None:
        for i in range(count):
            method = "X" + "".join(rng.choices(string.ascii_uppercase, k=9))
            resp = await http.request(method, paths[i % len(paths)])
            assert resp.status_code < 500, (method, resp.status_code, resp.text)

    async with httpx.AsyncClient(base_url=deployment.ingress.url, timeout=30) as http:
        await junk(http, 200)
        first = [await series(p) for p in deployment.services]
        await junk(http, 400)
        second = [await series(p) for p in deployment.services]
    assert [len(s) for s in second] == [len(s) for s in first]  # more junk, no more series
    methods = {labels.get("method") for s in second for _, labels in s} - {None}
    assert methods <= {"get", "head", "post", "put", "patch", "delete", "options", "unknown"}
    assert "unknown" in methods  # the junk did reach the services and was counted


async def series(proc: ClairProcess) -> list[tuple[str, dict[str, str]]]:
    async with httpx.AsyncClient() as http:
        resp = await http.get(proc.introspection + "/metrics")
    resp.raise_for_status()
    return [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(resp.text)
        if family.name.startswith("clair_http")
        for sample in family.samples
    ]


async def test_slow_layer_gets_clairs_400_not_a_timeout(
    deployment: Deployment, faulty_origin: FaultyOrigin
) -> None:
    blob = build_layer({"etc/drip": b"drip"})
    doc = {
        "hash": "sha256:" + "d1" * 32,
        "layers": [{"hash": sha256_digest(blob), "uri": faulty_origin.drip("/d", blob, 0.5)}],
    }
    async with httpx.AsyncClient(base_url=deployment.ingress.url, timeout=120) as http:
        resp = await http.post(INDEX, json=doc)
        assert resp.status_code == 400, resp.text + deployment.logs()
        assert resp.json()["code"] == "bad-request"
        assert "slower than 1000 bytes/s" in resp.json()["message"]
        stored = await http.get(f"{INDEX}/{doc['hash']}")
        assert stored.status_code == 200, stored.text
        assert stored.json()["state"] == "IndexError"


def readyz(proc: ClairProcess) -> int:
    try:
        return httpx.get(proc.introspection + "/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


async def test_database_down_is_clairs_503(deployment: Deployment) -> None:
    report = f"{INDEX}/sha256:" + "ab" * 32
    layer = {"hash": "sha256:" + "ad" * 32, "uri": "http://127.0.0.1:9/blob"}
    doc = {"hash": "sha256:" + "ac" * 32, "layers": [layer]}
    vulns = "/matcher/api/v1/vulnerability_report/sha256:" + "ab" * 32
    async with httpx.AsyncClient(base_url=deployment.ingress.url, timeout=30) as http:
        assert (await http.get(report)).status_code == 404
        await asyncio.to_thread(deployment.pg.stop)
        try:
            for proc in deployment.services:
                await asyncio.to_thread(until, lambda p=proc: readyz(p) == 503, "unready")
            for _ in range(5):
                for method, path, body in (("GET", report, None), ("POST", INDEX, doc)):
                    resp = await http.request(method, path, json=body)
                    assert resp.status_code == 503, resp.text + deployment.ingress.log_text()
                    assert resp.json() == {
                        "code": "internal-error",
                        "message": "database unavailable",
                    }
                resp = await http.get(vulns)
                assert resp.status_code == 503, resp.text
                assert resp.json()["code"] == "internal-error"
        finally:
            await asyncio.to_thread(deployment.pg.start)
        for proc in deployment.services:
            await asyncio.to_thread(until, lambda p=proc: readyz(p) == 200, "ready again")
        assert (await http.get(report)).status_code == 404


def access_log(deployment: Deployment) -> list[str]:
    return deployment.ingress.access_log.read_text().splitlines()


def index_requests_in_flight(proc: ClairProcess) -> float:
    text = httpx.get(proc.introspection + "/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "clair_http_indexerv1_in_flight_requests"
        and sample.labels.get("handler") == INDEX
    )


async def test_draining_indexer_costs_no_502(
    deployment: Deployment, faulty_origin: FaultyOrigin
) -> None:
    """SIGTERM to one indexer while it holds a request (waiting on the manifest's lock, which
    the test holds): it drains that request while the ingress sends every new one to the other
    replica. Runs last: it stops indexer-1."""
    draining, other = deployment.indexers

    def manifest(n: int) -> dict[str, Any]:
        blob = build_layer({f"etc/drain{n}": b"x"})
        uri = faulty_origin.serve(f"/drain{n}", blob)
        return {
            "hash": "sha256:" + f"{n:02x}" * 32,
            "layers": [{"hash": sha256_digest(blob), "uri": uri}],
        }

    held_doc, indexed = manifest(0xD0), manifest(0xD1)
    conn = await asyncpg.connect(deployment.dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key(f"manifest:{held_doc['hash']}"))
        async with (
            httpx.AsyncClient(timeout=60) as direct,
            httpx.AsyncClient(base_url=deployment.ingress.url, timeout=60) as http,
        ):
            for _ in range(2):  # indexed, and keep-alive connections to both replicas
                assert (await http.post(INDEX, json=indexed)).status_code == 201
            held = asyncio.create_task(direct.post(draining.api + INDEX, json=held_doc))
            await asyncio.to_thread(
                until, lambda: index_requests_in_flight(draining) > 0, "holding a request"
            )
            before = len(access_log(deployment))
            draining.proc.send_signal(signal.SIGTERM)
            statuses = []
            for i in range(40):
                if i % 2:
                    resp = await http.get(STATE)
                else:
                    resp = await http.post(INDEX, json=indexed)
                statuses.append(resp.status_code)
            assert draining.proc.poll() is None  # still draining its one request
            await conn.execute("SELECT pg_advisory_unlock_all()")
            finished = await held
    finally:
        await conn.close()
    assert set(statuses) <= {200, 201}, statuses
    # The ingress did try the draining replica (and went on to the other): the probe probed.
    tried = [
        line
        for line in access_log(deployment)[before:]
        if draining.api.removeprefix("http://") in line
    ]
    assert tried, deployment.ingress.log_text()
    assert finished.status_code == 201, finished.text  # drained, not cut off
    assert await asyncio.to_thread(draining.proc.wait, 60) == 0
    assert "Traceback" not in draining.log_text()
    assert other.proc.poll() is None


async def test_draining_matcher_costs_no_502(
    deployment: Deployment, faulty_origin: FaultyOrigin, tmp_path: Path
) -> None:
    """`make up MATCHERS=2`'s shape: two matchers behind NGINX. SIGTERM to one while it holds
    a vulnerability report (its index report trickles in from the indexer, here the test's
    origin, until released): the held report completes, and every new request the ingress
    takes meanwhile is answered by the other replica."""
    indexer = "/indexer/api/v1/index_report/"
    held_digest, ready_digest = "sha256:" + "e0" * 32, "sha256:" + "e1" * 32
    release = asyncio.Event()
    for digest in (held_digest, ready_digest):
        doc = orjson.dumps(IndexReport(digest, IndexState.FINISHED, success=True).to_json())
        if digest == held_digest:
            faulty_origin.throttle(indexer + digest, doc, release, every=0.1)
        else:
            faulty_origin.serve(indexer + digest, doc, "application/json")
    faulty_origin.serve("/indexer/api/v1/index_state", b'{"state":"s"}', "application/json")
    # Reports are answered (not 202) once the matcher's database holds a vulnerability.
    store = await MatcherStore.open(
        deployment.dsn, application_name="test", migrations=False, min_size=1, max_size=1
    )
    try:
        vuln = Vulnerability(updater="drain", name="drain-1", package=Package(name="drain"))
        await store.update_vulnerabilities("drain", "fp", [vuln])
    finally:
        await store.close()
    env = {
        "CLAIR_DATABASE_CONNECT_TIMEOUT": "2s",
        "CLAIR_SHUTDOWN_GRACE_PERIOD": "60s",
        "CLAIR_MATCHER__CONNSTRING": deployment.dsn,
        "CLAIR_MATCHER__DISABLE_UPDATERS": "true",
        "CLAIR_MATCHER__INDEXER_ADDR": faulty_origin.url,
    }
    report = "/matcher/api/v1/vulnerability_report/"
    operations = "/matcher/api/v1/internal/update_operation"
    with (
        clair_server(tmp_path, mode="matcher", env=env, name="matcher-1") as draining,
        clair_server(tmp_path, mode="matcher", env=env, name="matcher-2") as other,
        nginx_ingress(tmp_path, {"matcher": [draining.api, other.api]}) as ingress,
    ):
        for proc in (draining, other):
            await asyncio.to_thread(wait_ready, proc)
        async with (
            httpx.AsyncClient(timeout=60) as direct,
            httpx.AsyncClient(base_url=ingress.url, timeout=60) as http,
        ):
            for _ in range(2):  # keep-alive connections to both replicas
                assert (await http.get(report + ready_digest)).status_code == 200
            faulty_origin.arrived.clear()
            held = asyncio.create_task(direct.get(draining.api + report + held_digest))
            await asyncio.wait_for(faulty_origin.arrived.wait(), 30)  # the request is in
            before = len(ingress.access_log.read_text().splitlines())
            draining.proc.send_signal(signal.SIGTERM)
            statuses = []
            for i in range(40):
                resp = await http.get(report + ready_digest if i % 2 else operations)
                statuses.append(resp.status_code)
            assert draining.proc.poll() is None  # still draining its one request
            release.set()
            finished = await held
        assert set(statuses) == {200}, (statuses, ingress.log_text())
        tried = [
            line
            for line in ingress.access_log.read_text().splitlines()[before:]
            if draining.api.removeprefix("http://") in line
        ]
        assert tried, ingress.log_text()  # the ingress did try the draining replica
        assert finished.status_code == 200, finished.text  # drained, not cut off
        assert finished.json()["manifest_hash"] == held_digest
        assert await asyncio.to_thread(draining.proc.wait, 60) == 0
        assert "Traceback" not in draining.log_text()
        assert other.proc.poll() is None
