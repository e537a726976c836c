"""The metric families Clair's dashboards read, scraped from every mode.

Names and label sets are facts from Clair's and claircore's source: `cmd/build.go`
(`clair_cmd_version_info`), claircore's `pkg/poolstats` (the nine `pgxpool_*` families,
one `application_name` per pool: claircore names them libindex, libvuln and notifier),
`indexer/controller/checkmanifest.go` and `datastore/postgres/*.go` (the `claircore_indexer_*`
and `claircore_vulnstore_*` families, Go's default buckets).
"""

from __future__ import annotations

import asyncio
import functools
import json
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.common.test_dropin_configs import keyword_form
from tests.common.test_tracing import _seed_vulnerability, layer_origin
from tests.fixtures.images import build_layer, sha256_digest
from tests.fixtures.server import ClairProcess, clair_server, wait_ready

# An Alpine layer with one package: indexing stores a distribution and a package, and
# matching its report queries vulnerabilities.
LAYER = build_layer(
    {
        "etc/os-release": b'ID=alpine\nVERSION_ID=3.20.0\nNAME="Alpine Linux"\n',
        "lib/apk/db/installed": b"P:musl\nV:1.2.5-r0\nA:x86_64\no:musl\n\n",
    }
)

VERSION_INFO = {
    "clair_cmd_version_info": {"claircore_version", "goversion", "modified", "revision", "version"}
}
POOL_SAMPLES = {
    name: {"application_name"}
    for name in (
        "pgxpool_acquire_count",
        "pgxpool_acquire_duration_seconds_total",
        "pgxpool_acquired_conns",
        "pgxpool_canceled_acquire_count",
        "pgxpool_constructing_conns",
        "pgxpool_empty_acquire",
        "pgxpool_idle_conns",
        "pgxpool_max_conns",
        "pgxpool_total_conns",
    )
}
POOLS = {
    "combo": {"libindex", "libvuln", "notifier"},
    "indexer": {"libindex"},
    "matcher": {"libvuln"},
    "notifier": {"notifier"},
}


# claircore's indexer store families (datastore/postgres/*.go): `<method>_total` counters
# (the family name drops `_total`) and `<method>_duration_seconds` histograms, labelled
# `query`; DeleteManifests' also `success`. SetIndexFinished's counter is spelled
# `setindexedfinished_total`. Families without samples show only their HELP and TYPE lines.
_INDEXER_METHODS = (
    "affectedmanifests",
    "deletemanifests",
    "distributionbylayer",
    "filesbylayer",
    "indexdistributions",
    "indexfiles",
    "indexmanifest",
    "indexpackage",
    "indexreport",
    "indexrepositories",
    "layerscanned",
    "manifestscanned",
    "packagesbylayer",
    "persistmanifest",
    "protorecord",
    "registerscanners",
    "repositoriesbylayer",
    "setindexfinished",
    "setindexreport",
    "setlayerscanned",
)
INDEXER_LABELS = {
    **{
        f"claircore_indexer_{m}": {"query"}
        for m in _INDEXER_METHODS
        if m not in ("setindexfinished", "deletemanifests")
    },
    **{f"claircore_indexer_{m}_duration_seconds": {"query"} for m in _INDEXER_METHODS},
    "claircore_indexer_setindexedfinished": {"query"},
    "claircore_indexer_deletemanifests": {"query", "success"},
    "claircore_indexer_deletemanifests_duration_seconds": {"query", "success"},
    # indexer/controller/checkmanifest.go, a counter named without `_total`.
    "claircore_indexer_scanned_manifests": {"scanned_before"},
}
# claircore's matcher store families (datastore/postgres/*.go): labelled `query`; GetEnrichment's
# also `success`, GC's counter (not its histogram) `success`, UpdateVulnerabilities' `is_delta`.
_VULNSTORE_METHODS = (
    "gc",
    "getenrichments",
    "getlatestrefs",
    "getlatestupdateref",
    "getupdatediff",
    "getupdateoperations",
    "getvulnerabilities",
    "populaterefs",
    "updateenrichments",
    "updatevulnerabilities",
)
VULNSTORE_LABELS = {
    **{f"claircore_vulnstore_{m}": {"query"} for m in _VULNSTORE_METHODS},
    **{f"claircore_vulnstore_{m}_duration_seconds": {"query"} for m in _VULNSTORE_METHODS},
    "claircore_vulnstore_gc": {"query", "success"},
    "claircore_vulnstore_getenrichments": {"query", "success"},
    "claircore_vulnstore_getenrichments_duration_seconds": {"query", "success"},
    "claircore_vulnstore_updatevulnerabilities": {"query", "is_delta"},
    "claircore_vulnstore_updatevulnerabilities_duration_seconds": {"query", "is_delta"},
}
# Go's prometheus.DefBuckets: claircore's histograms set none.
GO_BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0"]


# Clair's notifier store families (notifier/postgres/*.go), in processes running the notifier.
NOTIFIER_FAMILIES = {
    f"clair_notifier_{method}{suffix}"
    for method in (
        "created",
        "notifications",
        "receipt",
        "receiptbyuoid",
        "setdelivered",
        "setdeliveryfailed",
        "setdeleted",
        "deletenotifications",
    )
    for suffix in ("", "_duration_seconds")
}


def scrape(
    server: ClairProcess, families: set[str] | None = None, by_family: bool = False
) -> dict[str, list[dict[str, str]]]:
    """Label sets of each sample, keyed by sample name (or by family name)."""
    with urllib.request.urlopen(server.introspection + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        if families is not None:
            families.add(family.name)
        for sample in family.samples:
            key = family.name if by_family else sample.name
            samples.setdefault(key, []).append(dict(sample.labels))
    return samples


def index_twice_and_delete(
    server: ClairProcess, digest: str, layer_url: str, before_delete: Callable[[], None]
) -> None:
    """What an indexer's store does for a client: index, re-index, read, delete."""
    layers = [{"hash": sha256_digest(LAYER), "uri": layer_url, "headers": {}}]
    body = json.dumps({"hash": digest, "layers": layers}).encode()
    api = f"{server.api}/indexer/api/v1/index_report"
    for _ in range(2):
        post = urllib.request.Request(
            api, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(post, timeout=60) as resp:
            assert resp.status in (200, 201)
    with urllib.request.urlopen(f"{api}/{digest}", timeout=30) as resp:
        assert resp.status == 200
    before_delete()
    delete = urllib.request.Request(f"{api}/{digest}", method="DELETE")
    with urllib.request.urlopen(delete, timeout=30) as resp:
        assert resp.status == 204


def match_and_list_operations(server: ClairProcess, digest: str, dsn: str) -> None:
    """What a matcher's store does for a client: a report, the update operations."""
    asyncio.run(_seed_vulnerability(dsn))  # else the report is 202, asking nothing
    with urllib.request.urlopen(
        f"{server.api}/matcher/api/v1/vulnerability_report/{digest}", timeout=30
    ) as resp:
        assert resp.status == 200
    for query in ("", "?latest=true"):
        url = f"{server.api}/matcher/api/v1/internal/update_operation{query}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.status == 200


def after_indexing(mode: str, server: ClairProcess, digest: str, dsn: str = "") -> None:
    if mode == "combo":
        match_and_list_operations(server, digest, dsn)


def check_families(
    mode: str,
    families: set[str],
    server: ClairProcess,
    table: dict[str, set[str]],
    expected: tuple[tuple[str, dict[str, str]], ...],
) -> None:
    """Family names and label sets as claircore's, Go's buckets, and the `expected` samples."""
    assert families >= set(table), (mode, sorted(set(table) - families))
    by_family = scrape(server, by_family=True)
    for name, labels in table.items():
        for sample in by_family.get(name, []):
            le = sample.pop("le", None)
            assert set(sample) == labels, (mode, name, sample)
            assert le is None or le in (*GO_BUCKETS, "+Inf"), (mode, name, le)
    used = {(name, tuple(sorted(s.items()))) for name, found in by_family.items() for s in found}
    for name, values in expected:
        assert (name, tuple(sorted(values.items()))) in used, (
            mode,
            name,
            values,
            sorted(u for u in used if u[0].startswith("_".join(name.split("_")[:2]))),
        )


def check_indexer_families(mode: str, families: set[str], server: ClairProcess) -> None:
    # What the requests above must have counted, by claircore's query labels.
    expected: tuple[tuple[str, dict[str, str]], ...] = (
        ("claircore_indexer_scanned_manifests", {"scanned_before": "false"}),
        ("claircore_indexer_scanned_manifests", {"scanned_before": "true"}),
        ("claircore_indexer_persistmanifest", {"query": "insertManifestLayer"}),
        ("claircore_indexer_layerscanned", {"query": "selectScanned"}),
        ("claircore_indexer_manifestscanned", {"query": "selectScanned"}),
        ("claircore_indexer_distributionbylayer", {"query": "query"}),
        ("claircore_indexer_setindexedfinished", {"query": "upsertIndexReport"}),
        ("claircore_indexer_indexreport", {"query": "query"}),
        ("claircore_indexer_deletemanifests", {"query": "deleteManifest", "success": "true"}),
    )
    if mode == "combo":  # the first to see the layer scans and stores it
        expected += (
            ("claircore_indexer_indexdistributions", {"query": "insertWith_batch"}),
            ("claircore_indexer_setlayerscanned", {"query": "query"}),
            ("claircore_indexer_indexpackage", {"query": "insertWith_batch"}),
        )
    check_families(mode, families, server, INDEXER_LABELS, expected)


def check_vulnstore_families(mode: str, families: set[str], server: ClairProcess) -> None:
    expected: tuple[tuple[str, dict[str, str]], ...] = ()
    if mode == "combo":  # the one that was asked for a report and the operations
        expected = (
            ("claircore_vulnstore_getvulnerabilities", {"query": "query_batch"}),
            ("claircore_vulnstore_getlatestrefs", {"query": "query"}),
            ("claircore_vulnstore_getlatestrefs", {"query": "query_vulnerability"}),
            ("claircore_vulnstore_getupdateoperations", {"query": "query_vulnerability"}),
        )
    check_families(mode, families, server, VULNSTORE_LABELS, expected)


def test_every_mode_exposes_clairs_families(pg_dsn_sync: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "indexer:\n  migrations: true\nmatcher:\n  migrations: true\n  indexer_addr: http://127.0.0.1:9/\n"
        "  disable_updaters: true\nnotifier:\n  migrations: true\n  indexer_addr: http://127.0.0.1:9/\n"
        "  matcher_addr: http://127.0.0.1:9/\n  webhook:\n    target: http://127.0.0.1:9/\n"
    )
    database = keyword_form(pg_dsn_sync)
    env = {
        "CLAIR_CONF": str(config),
        **{f"CLAIR_{s}__CONNSTRING": database for s in ("INDEXER", "MATCHER", "NOTIFIER")},
    }
    with ExitStack() as stack:
        layer_url = stack.enter_context(layer_origin(LAYER))
        servers = {
            mode: stack.enter_context(clair_server(tmp_path, mode=mode, env=env, name=mode))
            for mode in POOLS
        }
        for mode, server in servers.items():
            wait_ready(server, timeout=90)
            if mode in ("combo", "indexer"):
                digest = "sha256:" + ("cd" if mode == "combo" else "ef") * 32
                index_twice_and_delete(
                    server,
                    digest,
                    layer_url,
                    functools.partial(after_indexing, mode, server, digest, pg_dsn_sync),
                )
            families: set[str] = set()
            samples = scrape(server, families)
            if mode in ("combo", "notifier"):
                assert families >= NOTIFIER_FAMILIES, (mode, sorted(families))
            if mode in ("combo", "indexer"):
                check_indexer_families(mode, families, server)
            if mode in ("combo", "matcher"):
                check_vulnstore_families(mode, families, server)
            for name, labels in {**VERSION_INFO, **POOL_SAMPLES}.items():
                assert name in samples, f"{mode}: {name} missing"
                assert all(set(s) == labels for s in samples[name]), (mode, name, samples[name])
            pools = {s["application_name"] for s in samples["pgxpool_max_conns"]}
            assert POOLS[mode] <= pools, (mode, pools)
            (info,) = samples["clair_cmd_version_info"]
            assert info["version"]
