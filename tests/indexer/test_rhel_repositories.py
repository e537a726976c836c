"""`rhel-repository-scanner` and the coalescer's Red Hat rule.

Layers are claircore's own content-manifest test layers (rhel/testdata/*.tar); the mapping is
either claircore's test mapping (written below, as in its repositoryscanner_test.go) or Red
Hat's real repository-to-cpe.json. The expected CPE repositories of a UBI 8 image are the
ones of the real Clair report kept in other/claircore/datastore/postgres/testdata.
"""

from __future__ import annotations

import asyncio
import json
import lzma
from pathlib import Path
from typing import Any

import pytest

from clair_common.config.models import ScannerConfig
from clair_common.models import Package, Repository
from clair_indexer.coalesce import CoalescedLayer, coalesce, shared_cpe_repositories
from clair_indexer.layer import read_layer
from clair_indexer.scanners import RhelRepositoryScanner, default_scanners
from clair_indexer.scanners.rhel_repositories import (
    DEFAULT_MAPPING_URL,
    MAPPING_URL_ENV,
    MappingUnavailable,
    RepositoryCpeMapping,
)
from clair_indexer.store import LayerArtifacts
from tests.fixtures.feeds import FeedServer
from tests.indexer.test_scanners_base import layer_of

CC_RHEL = "layers/claircore/rhel/testdata"
REAL_MAPPING = "feeds/vuls-data-update/pkg/fetch/redhat/repository2cpe/testdata/fixtures"
UBI8_REPORT = (
    "other/claircore/datastore/postgres/testdata/registry.access.redhat.com-ubi8-ubi.index.json"
)
UBI8_MANIFEST = "root/buildinfo/content_manifests/ubi8-container-8.7-1112.json"
# What a UBI 8 x86_64 image's content manifest lists: the two RHEL 8 repositories it is built from.
UBI8_CONTENT_SETS = ["rhel-8-for-x86_64-baseos-rpms", "rhel-8-for-x86_64-appstream-rpms"]
# claircore's repositoryscanner_test.go mapping for its content-set-N layers.
CLAIRCORE_MAPPING = {
    "data": {
        "content-set-1": {
            "cpes": [
                "cpe:/o:redhat:enterprise_linux:6::server",
                "cpe:/o:redhat:enterprise_linux:7::server",
            ]
        },
        "content-set-2": {
            "cpes": [
                "cpe:/o:redhat:enterprise_linux:7::server",
                "cpe:/o:redhat:enterprise_linux:8::server",
            ]
        },
    }
}
CLAIRCORE_WANT = [
    Repository(
        name=f"cpe:/o:redhat:enterprise_linux:{v}::server",
        key="rhel-cpe-repository",
        cpe=f"cpe:2.3:o:redhat:enterprise_linux:{v}:*:server:*:*:*:*:*",
    )
    for v in (6, 7, 8)
]

Triple = tuple[str, str, str]


def triples(repos: list[Repository]) -> list[Triple]:
    return [(r.name, r.key, r.cpe) for r in repos]


@pytest.fixture(scope="module")
def real_mapping(shared_data: Path) -> bytes:
    """Red Hat's full repository-to-cpe.json, decompressed (Clair reads plain JSON)."""
    return lzma.decompress((shared_data / REAL_MAPPING / "repository-to-cpe.json.xz").read_bytes())


@pytest.fixture(scope="module")
def real_mapping_file(real_mapping: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repo2cpe") / "repository-to-cpe.json"
    out.write_bytes(real_mapping)
    return out


@pytest.fixture
def claircore_mapping_file(tmp_path: Path) -> Path:
    out = tmp_path / "repository-2-cpe.json"
    out.write_text(json.dumps(CLAIRCORE_MAPPING))
    return out


def scanner_for(mapping_file: Path) -> RhelRepositoryScanner:
    return RhelRepositoryScanner.from_config({"repo2cpe_mapping_file": str(mapping_file)})


def scan_tar(scanner: RhelRepositoryScanner, tar: Path) -> list[Repository]:
    return scanner.scan(read_layer(tar, scanner.wants)).repositories


def ubi8_report_repositories(shared_data: Path) -> list[Triple]:
    report: dict[str, Any] = json.loads((shared_data / UBI8_REPORT).read_text())
    repos = [r for r in report["repository"].values() if r.get("key") == "rhel-cpe-repository"]
    return sorted((r["name"], r["key"], r["cpe"]) for r in repos)


# --- the scanner ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tar",
    [
        "layer-with-embedded-cs.tar",
        "rhcos-layer-with-embedded-cs.tar",  # usr/share/buildinfo/*.json (RHCOS)
        "rhcos-layer-with-conflicting-files.tar",  # both places: root/buildinfo wins
    ],
)
def test_claircore_layers(shared_data: Path, claircore_mapping_file: Path, tar: str) -> None:
    got = scan_tar(scanner_for(claircore_mapping_file), shared_data / CC_RHEL / tar)
    assert sorted(triples(got)) == triples(CLAIRCORE_WANT)  # CPEs of both sets, 7 once


@pytest.mark.parametrize(
    "tar",
    [
        "layer-with-no-cpe-info.tar",  # root/buildinfo/ only
        "layer-with-cpe.tar",  # a Dockerfile: Clair would ask Red Hat's container API; we don't
        "layer-with-invalid-content-manifests-json.tar",  # not JSON: logged, ignored (as Clair)
    ],
)
def test_claircore_layers_without_usable_manifest(
    shared_data: Path, claircore_mapping_file: Path, tar: str
) -> None:
    assert scan_tar(scanner_for(claircore_mapping_file), shared_data / CC_RHEL / tar) == []


def test_real_mapping_does_not_know_test_content_sets(
    shared_data: Path, real_mapping_file: Path
) -> None:
    tar = shared_data / CC_RHEL / "layer-with-embedded-cs.tar"
    assert scan_tar(scanner_for(real_mapping_file), tar) == []


def test_ubi8_content_sets_give_the_real_reports_repositories(
    shared_data: Path, real_mapping_file: Path
) -> None:
    manifest = json.dumps({"metadata": {"icm_version": 1}, "content_sets": UBI8_CONTENT_SETS})
    got = scanner_for(real_mapping_file).scan(layer_of({UBI8_MANIFEST: manifest})).repositories
    want = ubi8_report_repositories(shared_data)
    assert len(want) == 4
    assert sorted(triples(got)) == want
    # First-seen order of the mapping: baseos CPEs, then appstream ones.
    assert [r.name for r in got][:2] == [
        "cpe:/o:redhat:enterprise_linux:8::baseos",
        "cpe:/o:redhat:rhel:8.3::baseos",
    ]


def test_first_manifest_in_path_order_is_read(claircore_mapping_file: Path) -> None:
    layer = layer_of(
        {
            "root/buildinfo/content_manifests/b.json": '{"content_sets": ["content-set-1"]}',
            "root/buildinfo/content_manifests/a.json": '{"content_sets": ["content-set-2"]}',
            "usr/share/buildinfo/0.json": '{"content_sets": ["content-set-1"]}',
            "root/buildinfo/content_manifests/sub/c.json": '{"content_sets": ["content-set-1"]}',
        }
    )
    got = scanner_for(claircore_mapping_file).scan(layer).repositories
    assert [r.name for r in got] == [
        "cpe:/o:redhat:enterprise_linux:7::server",
        "cpe:/o:redhat:enterprise_linux:8::server",
    ]


def test_wants_only_manifest_files() -> None:
    scanner = RhelRepositoryScanner(RepositoryCpeMapping())
    assert scanner.wants("root/buildinfo/content_manifests/x-1-2.json")
    assert scanner.wants("usr/share/buildinfo/content-sets.json")
    assert not scanner.wants("root/buildinfo/content_manifests/sub/x.json")
    assert not scanner.wants("root/buildinfo/Dockerfile-ubi8-8.7-1112")
    assert not scanner.wants("etc/os-release")


def test_manifest_of_the_wrong_shape_is_an_error(claircore_mapping_file: Path) -> None:
    scanner = scanner_for(claircore_mapping_file)
    bad = layer_of({UBI8_MANIFEST: '{"content_sets": "rhel-8-for-x86_64-baseos-rpms"}'})
    with pytest.raises(ValueError, match="content_sets"):
        scanner.scan(bad)
    # No content sets at all is simply nothing.
    assert scanner.scan(layer_of({UBI8_MANIFEST: '{"metadata": {}}'})).repositories == []


def test_invalid_cpes_are_skipped(tmp_path: Path) -> None:
    mapping = tmp_path / "m.json"
    cpes = ["cpe:/a:redhat:openshift:4.*", "cpe:/a:redhat:openshift:4.13::el8", "not a cpe"]
    mapping.write_text(json.dumps({"data": {"ocp": {"cpes": cpes}}}))
    got = scanner_for(mapping).scan(layer_of({UBI8_MANIFEST: '{"content_sets": ["ocp"]}'}))
    assert triples(got.repositories) == [
        (
            "cpe:/a:redhat:openshift:4.13::el8",
            "rhel-cpe-repository",
            "cpe:2.3:a:redhat:openshift:4.13:*:el8:*:*:*:*:*",
        )
    ]


# --- configuration and the mapping URL ------------------------------------------------------


def test_config(monkeypatch: pytest.MonkeyPatch, claircore_mapping_file: Path) -> None:
    monkeypatch.delenv(MAPPING_URL_ENV, raising=False)
    assert RhelRepositoryScanner.from_config(None).mapping.url == DEFAULT_MAPPING_URL
    monkeypatch.setenv(MAPPING_URL_ENV, "http://127.0.0.1:9/m.json")
    assert RhelRepositoryScanner.from_config({}).mapping.url == "http://127.0.0.1:9/m.json"
    configured = RhelRepositoryScanner.from_config(
        {"repo2cpe_mapping_file": str(claircore_mapping_file), "timeout": "5s", "disable_api": True}
    )
    assert (configured.mapping.url, configured.mapping.timeout) == ("", 5.0)
    assert RhelRepositoryScanner.from_config({"timeout": 0}).mapping.timeout == 30.0
    with pytest.raises(ValueError, match="timeout"):
        RhelRepositoryScanner.from_config({"timeout": "soon"})
    with pytest.raises(ValueError, match="mapping"):
        RhelRepositoryScanner.from_config("file")  # type: ignore[arg-type]
    with pytest.raises(OSError, match="nonexistent"):
        RhelRepositoryScanner.from_config({"repo2cpe_mapping_file": "/nonexistent/m.json"})
    not_a_mapping = claircore_mapping_file.with_name("list.json")
    not_a_mapping.write_text("[]")
    with pytest.raises(ValueError, match="data"):
        RhelRepositoryScanner.from_config({"repo2cpe_mapping_file": str(not_a_mapping)})


def test_default_scanners_take_indexer_scanner_config(claircore_mapping_file: Path) -> None:
    config = ScannerConfig(
        repo={"rhel-repository-scanner": {"repo2cpe_mapping_file": str(claircore_mapping_file)}}
    )
    (scanner,) = [
        s for s in default_scanners(config, airgap=True) if s.name == "rhel-repository-scanner"
    ]
    assert isinstance(scanner, RhelRepositoryScanner)
    assert (scanner.kind, scanner.ecosystem) == ("repository", "rhel")
    assert scanner.mapping.airgap and scanner.mapping.url == ""
    manifest = '{"content_sets": ["content-set-2"]}'
    assert len(scanner.scan(layer_of({UBI8_MANIFEST: manifest})).repositories) == 2


async def test_mapping_url_fetched_once_then_revalidated(
    feed_server: FeedServer, real_mapping: bytes, shared_data: Path
) -> None:
    feed_server.put("repository-to-cpe.json", real_mapping)
    url = feed_server.url + "repository-to-cpe.json"
    # Loopback is allowed in airgap mode.
    scanner = RhelRepositoryScanner.from_config({"repo2cpe_mapping_url": url}, airgap=True)
    no_manifest = layer_of({"etc/os-release": "ID=rhel\n"})
    assert (await asyncio.to_thread(scanner.scan, no_manifest)).repositories == []
    assert feed_server.count("repository-to-cpe.json") == 0  # fetched only when needed

    layer = layer_of({UBI8_MANIFEST: json.dumps({"content_sets": UBI8_CONTENT_SETS})})
    first = await asyncio.to_thread(scanner.scan, layer)
    second = await asyncio.to_thread(scanner.scan, layer)
    assert sorted(triples(first.repositories)) == ubi8_report_repositories(shared_data)
    assert second == first
    assert feed_server.count("repository-to-cpe.json") == 1

    scanner.mapping.refresh_interval = 0  # due again: If-Modified-Since answered with 304
    scanner.mapping._next_fetch = 0.0
    assert await asyncio.to_thread(scanner.scan, layer) == first
    assert feed_server.count("repository-to-cpe.json") == 2


async def test_mapping_url_failures(feed_server: FeedServer, claircore_mapping_file: Path) -> None:
    url = feed_server.url + "missing.json"
    layer = layer_of({UBI8_MANIFEST: '{"content_sets": ["content-set-1"]}'})
    only_url = RhelRepositoryScanner.from_config({"repo2cpe_mapping_url": url})
    with pytest.raises(MappingUnavailable, match="404"):
        await asyncio.to_thread(only_url.scan, layer)
    with pytest.raises(MappingUnavailable):  # tried again on the next scan, not cached
        await asyncio.to_thread(only_url.scan, layer)
    assert feed_server.count("missing.json") == 2

    # With a file as well, the file's mapping serves while the URL fails.
    both = RhelRepositoryScanner.from_config(
        {"repo2cpe_mapping_url": url, "repo2cpe_mapping_file": str(claircore_mapping_file)}
    )
    got = await asyncio.to_thread(both.scan, layer)
    assert [r.name for r in got.repositories] == [
        "cpe:/o:redhat:enterprise_linux:6::server",
        "cpe:/o:redhat:enterprise_linux:7::server",
    ]


def test_airgap_refuses_public_mapping_url(claircore_mapping_file: Path) -> None:
    layer = layer_of({UBI8_MANIFEST: '{"content_sets": ["content-set-1"]}'})
    public = "http://8.8.8.8/repository-to-cpe.json"  # never dialled: refused before connecting
    alone = RhelRepositoryScanner.from_config({"repo2cpe_mapping_url": public}, airgap=True)
    assert alone.scan(layer).repositories == []  # Clair: an airgap-refused dial finds nothing
    with_file = RhelRepositoryScanner.from_config(
        {"repo2cpe_mapping_url": public, "repo2cpe_mapping_file": str(claircore_mapping_file)},
        airgap=True,
    )
    assert len(with_file.scan(layer).repositories) == 2


# --- coalescing: Red Hat CPE repositories shared between layers ------------------------------


def _repo(i: int) -> Repository:
    return Repository(
        id=str(i), name=f"cpe:/o:redhat:enterprise_linux:{i}", key="rhel-cpe-repository"
    )


def test_shared_cpe_repositories() -> None:
    a, b = _repo(1), _repo(2)
    other = Repository(id="9", name="pypi", uri="https://pypi.org/simple")
    arts = [
        LayerArtifacts(repositories=[("python", other)]),  # base layer: borrows from newer
        LayerArtifacts(repositories=[("rhel-repository-scanner", a)]),
        LayerArtifacts(),  # user layer: keeps the older layer's
        LayerArtifacts(repositories=[("rhel-repository-scanner", b)]),
        LayerArtifacts(),
    ]
    assert shared_cpe_repositories(arts) == [[a], [a], [a], [b], [b]]
    assert shared_cpe_repositories([LayerArtifacts(), LayerArtifacts()]) == [[], []]


def _pkg(i: int, name: str, db: str, hint: str = "") -> Package:
    return Package(id=str(i), name=name, version="1-1", package_db=db, repository_hint=hint)


def test_coalesce_attaches_cpe_repositories_to_rpm_packages_only() -> None:
    cpe = _repo(1)
    pypi = Repository(id="9", name="pypi", uri="https://pypi.org/simple")
    db = "sqlite:var/lib/rpm"
    base = LayerArtifacts(
        packages=[("rpm", _pkg(10, "bash", db))],
        repositories=[("rhel-repository-scanner", cpe)],
    )
    user = LayerArtifacts(
        packages=[
            ("rpm", _pkg(10, "bash", db)),
            ("rpm", _pkg(11, "nodejs", db)),
            ("python", _pkg(12, "requests", "python:usr/lib/python3.6/site-packages", "pypi")),
        ],
        repositories=[("python", pypi)],
    )
    layers = [
        CoalescedLayer("sha256:" + "a" * 64, base),
        CoalescedLayer("sha256:" + "b" * 64, user),
    ]
    report, rows = coalesce("sha256:" + "c" * 64, layers, {"rpm": "rpm", "python": "python"})
    envs = {
        pid: [(e.introduced_in[7], e.repository_ids) for e in es]
        for pid, es in report.environments.items()
    }
    # bash came with the base layer, nodejs with the user layer (which borrows the CPEs).
    assert envs == {"10": [("a", ["1"])], "11": [("b", ["1"])], "12": [("b", ["9"])]}
    assert set(report.repositories) == {"1", "9"}
    assert sorted(rows) == [(10, None, 1), (11, None, 1), (12, None, 9)]
