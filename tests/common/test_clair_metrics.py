"""The metric families Clair's dashboards read, scraped from every mode.

Names and label sets are facts from Clair's and claircore's source: `cmd/build.go`
(`clair_cmd_version_info`) and claircore's `pkg/poolstats` (the nine `pgxpool_*` families,
one `application_name` per pool: claircore names them libindex, libvuln and notifier).
"""

from __future__ import annotations

import urllib.request
from contextlib import ExitStack
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.common.test_dropin_configs import keyword_form
from tests.fixtures.server import ClairProcess, clair_server, wait_ready

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


# claircore's AffectedManifests families (datastore/postgres/affectedmanifest.go), in the
# processes that serve the indexer; labelled `query`, so only their family lines until used.
AFFECTED_FAMILIES = {
    "claircore_indexer_affectedmanifests",
    "claircore_indexer_affectedmanifests_duration_seconds",
}


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
    server: ClairProcess, families: set[str] | None = None
) -> dict[str, list[dict[str, str]]]:
    with urllib.request.urlopen(server.introspection + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        if families is not None:
            families.add(family.name)
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(dict(sample.labels))
    return samples


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
        servers = {
            mode: stack.enter_context(clair_server(tmp_path, mode=mode, env=env, name=mode))
            for mode in POOLS
        }
        for mode, server in servers.items():
            wait_ready(server, timeout=90)
            families: set[str] = set()
            samples = scrape(server, families)
            if mode in ("combo", "notifier"):
                assert families >= NOTIFIER_FAMILIES, (mode, sorted(families))
            if mode in ("combo", "indexer"):
                assert families >= AFFECTED_FAMILIES, (mode, sorted(families))
            for name, labels in {**VERSION_INFO, **POOL_SAMPLES}.items():
                assert name in samples, f"{mode}: {name} missing"
                assert all(set(s) == labels for s in samples[name]), (mode, name, samples[name])
            pools = {s["application_name"] for s in samples["pgxpool_max_conns"]}
            assert POOLS[mode] <= pools, (mode, pools)
            (info,) = samples["clair_cmd_version_info"]
            assert info["version"]
