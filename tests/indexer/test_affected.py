"""affected_manifest over a real indexer database filled by the indexer's own store code."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from prometheus_client import REGISTRY

from clair_common.db.migrate import migrate
from clair_common.db.pool import create_pool
from clair_common.models import (
    Distribution,
    IndexState,
    Package,
    Repository,
    Vulnerability,
)
from clair_common.vulnerable import MatchError
from clair_indexer.affected import affected_manifests
from clair_indexer.coalesce import CoalescedLayer, coalesce
from clair_indexer.store import IndexerStore, ScannerRow, ScanOutput

SCANNERS = [
    ScannerRow("dpkg", "1", "package"),
    ScannerRow("rpm", "1", "package"),
    ScannerRow("python", "1", "package"),
    ScannerRow("os-release", "1", "distribution"),
    ScannerRow("repos", "1", "repository"),
]
DEBIAN_12 = Distribution(
    did="debian", name="Debian GNU/Linux", version="12 (bookworm)", version_id="12"
)
DEBIAN_11 = Distribution(
    did="debian", name="Debian GNU/Linux", version="11 (bullseye)", version_id="11"
)
UBI_8 = Distribution(did="rhel", name="Red Hat Enterprise Linux", version="8.6", version_id="8.6")
PYPI = Repository(name="pypi", uri="https://pypi.invalid/simple")
BASEOS = Repository(
    name="cpe:/o:redhat:enterprise_linux:8::baseos",
    key="rhel-cpe-repository",
    cpe="cpe:2.3:o:redhat:enterprise_linux:8:*:baseos:*:*:*:*:*",
)
M1, M2, M3, M4 = ("sha256:" + c * 64 for c in "1234")


def deb(name: str, version: str, source: str, source_version: str) -> Package:
    return Package(
        name=name,
        version=version,
        kind="binary",
        arch="amd64",
        source=Package(name=source, version=source_version, kind="source"),
        package_db="var/lib/dpkg/status",
    )


def libssl3(version: str) -> Package:
    return deb("libssl3", version, "openssl", version)


PYYAML = Package(
    name="pyyaml",
    version="5.1",
    kind="binary",
    normalized_version="pep440:0.5.1.0.0.0.0.0.0.0",
    package_db="python:usr/lib/python3/dist-packages",
    repository_hint="pypi",
)
OPENSSL_LIBS = Package(
    name="openssl-libs",
    version="1:1.1.1k-6.el8_5",
    kind="binary",
    arch="x86_64",
    package_db="bdb:var/lib/rpm",
    repository_hint=BASEOS.name,
)


async def index_manifest(
    store: IndexerStore,
    scanner_ids: dict[str, int],
    digest: str,
    dist: Distribution,
    packages: Sequence[tuple[str, Package]],
    repositories: Sequence[Repository] = (),
) -> None:
    """One single-layer manifest through persist → store_layer → coalesce → finish."""
    layer_digest = "sha256:" + digest[-8:] * 8
    manifest_id, (layer_id,) = await store.persist_manifest(digest, [layer_digest])
    outputs = [
        ScanOutput(scanner_ids[scanner], packages=[p for s, p in packages if s == scanner])
        for scanner in {s for s, _ in packages}
    ]
    outputs.append(ScanOutput(scanner_ids["os-release"], distributions=[dist]))
    outputs.append(ScanOutput(scanner_ids["repos"], repositories=list(repositories)))
    await store.store_layer(layer_id, outputs, None, None)
    names = {sid: name for name, sid in scanner_ids.items()}
    artifacts = await store.load_artifacts([layer_id], names)
    ecosystems = {name: name for name in scanner_ids}
    report, rows = coalesce(digest, [CoalescedLayer(layer_digest, artifacts[layer_id])], ecosystems)
    report.state, report.success = IndexState.FINISHED, True
    await store.finish(manifest_id, report, rows, list(scanner_ids.values()))


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[IndexerStore]:
    await migrate(pg_dsn, "indexer", "clair_indexer")
    pool: asyncpg.Pool = await create_pool(
        pg_dsn, schema="indexer", application_name="test-affected"
    )
    store = IndexerStore(pool)
    ids = dict(
        zip([s.name for s in SCANNERS], await store.register_scanners(SCANNERS), strict=True)
    )
    await index_manifest(
        store,
        ids,
        M1,
        DEBIAN_12,
        [
            ("dpkg", libssl3("3.0.11-1~deb12u1")),
            ("dpkg", deb("bash", "5.2.15-2+b2", "bash", "5.2.15-2")),
        ],
    )
    await index_manifest(
        store,
        ids,
        M2,
        DEBIAN_12,
        [("dpkg", libssl3("3.0.11-1~deb12u2")), ("python", PYYAML)],
        [PYPI],
    )
    await index_manifest(store, ids, M3, DEBIAN_11, [("dpkg", libssl3("1.1.1w-0+deb11u1"))])
    await index_manifest(store, ids, M4, UBI_8, [("rpm", OPENSSL_LIBS)], [BASEOS])
    try:
        yield store
    finally:
        await pool.close()


def vuln(vid: str, name: str, kind: str, fixed: str, severity: str, **kw: object) -> Vulnerability:
    return Vulnerability(
        id=vid,
        name=f"CVE-2024-{vid}",
        package=Package(name=name, kind=kind),
        fixed_in_version=fixed,
        normalized_severity=severity,
        **kw,  # type: ignore[arg-type]
    )


VULNS = [
    # Debian 12, by source package: M1's libssl3 is older than the fix, M2's is the fix.
    vuln("101", "openssl", "source", "3.0.11-1~deb12u2", "High", distribution=DEBIAN_12),
    vuln("102", "pyyaml", "binary", "fixed=5.4", "Critical", repository=Repository(name="pypi")),
    vuln(
        "103",
        "openssl-libs",
        "binary",
        "1:1.1.1k-7.el8_6",
        "Medium",
        repository=Repository(name="cpe:/o:redhat:enterprise_linux:8", key="rhel-cpe-repository"),
    ),
    vuln("104", "bash", "binary", "0", "Low", distribution=DEBIAN_12),  # Debian: not affected
    vuln("105", "libssl3", "binary", "", "High"),  # no distribution: no matcher applies
    vuln("106", "libssl3", "binary", "", "Critical", distribution=DEBIAN_12),  # unfixed
    vuln("107", "libssl3", "source", "", "Critical", distribution=DEBIAN_12),  # kind differs
]


async def test_exactly_the_vulnerable_manifests(store: IndexerStore) -> None:
    got = await affected_manifests(store, VULNS, batch_size=3)

    assert got.vulnerable_manifests == {
        M1: ["106", "101"],  # Critical before High
        M2: ["102", "106"],  # equal severity: by id
        M4: ["103"],
    }
    assert list(got.vulnerabilities) == [v.id for v in VULNS]
    doc = got.to_json()
    assert doc["vulnerabilities"]["101"]["distribution"]["version"] == "12 (bookworm)"

    assert (await affected_manifests(store, [])).to_json() == {
        "vulnerabilities": {},
        "vulnerable_manifests": {},
    }
    fixed_on_debian_11 = vuln(
        "108", "openssl", "source", "1.1.1w-0+deb11u2", "Low", distribution=DEBIAN_11
    )
    assert (await affected_manifests(store, [fixed_on_debian_11])).vulnerable_manifests == {
        M3: ["108"]
    }


async def test_rule_errors_fail_the_request(store: IndexerStore) -> None:
    bad = vuln("109", "libssl3", "binary", "3.0 11", "Low", distribution=DEBIAN_12)
    with pytest.raises(MatchError):
        await affected_manifests(store, [bad])


async def test_queries_are_counted_under_claircores_families(store: IndexerStore) -> None:
    def count(query: str) -> float:
        value = REGISTRY.get_sample_value(
            "claircore_indexer_affectedmanifests_total", {"query": query}
        )
        return value or 0.0

    before = {q: count(q) for q in ("vulnerabilityToPackages", "selectAffected")}
    await affected_manifests(store, VULNS, batch_size=100_000)  # one batch: one query each
    assert count("vulnerabilityToPackages") == before["vulnerabilityToPackages"] + 1
    assert count("selectAffected") == before["selectAffected"] + 1
    observed = REGISTRY.get_sample_value(
        "claircore_indexer_affectedmanifests_duration_seconds_count", {"query": "selectAffected"}
    )
    assert observed is not None and observed >= 1
