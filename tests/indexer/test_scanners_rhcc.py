"""The rhcc scanners: Red Hat images' build labels (Dockerfile, labels.json) as packages."""

from __future__ import annotations

from pathlib import Path

from clair_common.vulnerable import rhcc
from clair_indexer.scanners import RhccLabelsScanner, RhccScanner, ScanResult
from clair_indexer.scanners.rhcc import (
    REPOSITORY_HINT,
    dockerfile_labels,
    labels_json_packages,
    version_release,
)
from tests.indexer.test_scanners_base import layer_of

LABELS = "layers/claircore/rhel/rhcc/testdata"
DOCKERFILE_PATH = (
    "root/buildinfo/Dockerfile-openshift-logging-elasticsearch6-v4.6.0-202112132021.p0"
)
# The shape of Red Hat's build Dockerfiles: several LABEL lines, continuations, quotes, an ARG.
DOCKERFILE = """\
FROM sha256:0123456789abcdef

# build arguments
ARG ES_VER=6.8.1
ENV ES_HOME=/usr/share/elasticsearch
LABEL \\
        io.k8s.description="Elasticsearch container for EFK aggregated logging storage" \\
        com.redhat.component=ose-logging-elasticsearch6-container \\
        name="openshift-logging/elasticsearch6-rhel8" \\
        version=v4.6.0 \\
        elasticsearch.version=${ES_VER}
RUN echo "LABEL name=not-a-label"
LABEL "release"="202112132021.p0" "architecture"="x86_64" "vcs-type"="git"
LABEL summary Elasticsearch for logging
"""


def test_dockerfile_labels() -> None:
    labels = dockerfile_labels(DOCKERFILE)
    assert labels["com.redhat.component"] == "ose-logging-elasticsearch6-container"
    assert labels["name"] == "openshift-logging/elasticsearch6-rhel8"
    assert labels["architecture"] == "x86_64"
    assert labels["release"] == "202112132021.p0"
    assert labels["elasticsearch.version"] == "6.8.1"
    assert labels["summary"] == "Elasticsearch for logging"
    assert labels["io.k8s.description"].startswith("Elasticsearch container")


def test_version_release_from_the_file_name() -> None:
    assert version_release(DOCKERFILE_PATH) == "v4.6.0-202112132021.p0"
    assert (
        version_release("root/buildinfo/Dockerfile-ubi8-8.4-206.1626828523") == "8.4-206.1626828523"
    )
    assert version_release("root/buildinfo/Dockerfile-ubi8") is None


def test_dockerfile_image_packages() -> None:
    scanner = RhccScanner()
    assert scanner.wants(DOCKERFILE_PATH)
    assert not scanner.wants("root/buildinfo/content_manifests/x.json")
    assert not scanner.wants("root/buildinfo/sub/Dockerfile-a-1-2")
    result = scanner.scan(layer_of({DOCKERFILE_PATH: DOCKERFILE}))
    source, binary = result.packages
    assert (source.name, source.version, source.kind, source.arch) == (
        "ose-logging-elasticsearch6-container",
        "v4.6.0-202112132021.p0",
        "source",
        "x86_64",
    )
    assert (binary.name, binary.version, binary.kind, binary.arch) == (
        "openshift-logging/elasticsearch6-rhel8",
        "v4.6.0-202112132021.p0",
        "binary",
        "x86_64",
    )
    assert binary.source is source
    assert {p.package_db for p in result.packages} == {DOCKERFILE_PATH}
    assert {p.repository_hint for p in result.packages} == {REPOSITORY_HINT}
    (repo,) = result.repositories
    assert (repo.name, repo.key, repo.uri) == (
        "Red Hat Container Catalog",
        "rhcc-container-repository",
        "https://catalog.redhat.com/software/containers/explore",
    )
    assert REPOSITORY_HINT in (repo.name, repo.uri)


def test_dockerfile_without_required_labels_or_tag_version() -> None:
    scanner = RhccScanner()
    no_component = DOCKERFILE.replace("com.redhat.component=", "com.example.component=")
    assert scanner.scan(layer_of({DOCKERFILE_PATH: no_component})) == ScanResult()
    # claircore needs a Red Hat tag (rhctag) for a version: "latest-1" is none
    odd = "root/buildinfo/Dockerfile-foo-latest-1"
    assert scanner.scan(layer_of({odd: DOCKERFILE})) == ScanResult()


def test_first_dockerfile_in_path_order() -> None:
    other = "root/buildinfo/Dockerfile-ubi8-8.4-206"
    result = RhccScanner().scan(layer_of({DOCKERFILE_PATH: DOCKERFILE, other: DOCKERFILE}))
    assert {p.package_db for p in result.packages} == {DOCKERFILE_PATH}


def test_labels_json_test_files(shared_data: Path) -> None:
    scanner = RhccLabelsScanner()
    assert scanner.wants("root/buildinfo/labels.json")
    for name in ("simple_labels.json", "quoted_labels.json"):
        data = (shared_data / LABELS / name).read_bytes()
        result = scanner.scan(layer_of({"root/buildinfo/labels.json": data}))
        source, binary = result.packages
        for pkg in (source, binary):
            assert pkg.name == "openshift-gitops-1/gitops-rhel8-operator", name
            assert pkg.arch == "x86_64", name
            # 2025-04-14T02:14:26Z in Unix seconds, as claircore versions such images
            assert pkg.version == "1744596866", name
            assert pkg.package_db == "root/buildinfo/labels.json"
        assert (source.kind, binary.kind) == ("source", "binary")
        assert binary.source is source
        assert [r.key for r in result.repositories] == [rhcc.REPOSITORY_KEY]


def test_labels_json_missing_fields(shared_data: Path) -> None:
    # The schema file is JSON but names no image: nothing to report.
    schema = (shared_data / LABELS / "labels.schema.json").read_bytes()
    assert labels_json_packages(schema) == []
    assert labels_json_packages(b"not json") == []
    assert labels_json_packages(b'{"name": "a/b", "architecture": "x86_64"}') == []
