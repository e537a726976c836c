"""End to end: a RHEL 8 (UBI-like) image matched against Red Hat VEX data.

The feed is vuls-data-update's real VEX archive excerpt (with its changes.csv and
deletions.csv) served by the local feed server and read by the production `rhel-vex` updater.
The image has a real RHEL 8 os-release / redhat-release, a content manifest naming the RHEL 8
BaseOS and AppStream repositories (turned into CPEs by Red Hat's real repository-to-CPE
mapping), and an rpm database built by rpmbuild with packages those documents name, some
before and some at the fix. The expected findings are computed here from the raw documents
(their product tree, purls and CPEs) and `rpm`'s own version comparison.
"""

from __future__ import annotations

import json
import lzma
import tarfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests.fixtures.combo import Combo, running_combo, vulnerabilities_by_package
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.rpmbuild import RpmBuilder, SourceRpm, install_rpms, rpm_vercmp

VULS_VEX = "feeds/vuls-data-update/pkg/fetch/redhat/vex/v1/testdata/fixtures"
MAPPING = "feeds/vuls-data-update/pkg/fetch/redhat/repository2cpe/testdata/fixtures"
RELEASE_FILES = "layers/claircore/rhel/testdata/releasefiles/8"
CONTENT_SETS = ["rhel-8-for-x86_64-baseos-rpms", "rhel-8-for-x86_64-appstream-rpms"]
ARCHIVE = "csaf_vex_2024-08-04.tar.zst"
# (name, version, release): before the fix, at the fix, and never fixed (known_affected)
PACKAGES = [
    ("firefox", "115.4.0", "1.el8_9"),
    ("thunderbird", "115.5.0", "1.el8_9"),
    ("perf", "4.18.0", "513.5.1.el8_9"),
    ("bpftool", "4.18.0", "553.5.1.el8_10"),
    ("libtiff", "4.0.9", "29.el8"),
]


def archive_documents(path: Path) -> Iterator[dict[str, Any]]:
    with (
        path.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for member in tar:
            fp = tar.extractfile(member) if member.isfile() else None
            if fp is not None:
                yield json.loads(fp.read())


def cpe_covers(vuln_cpe: str, image_cpe: str) -> bool:
    """URI CPEs: every component the document names equals the image's (missing = any)."""
    have = image_cpe.removeprefix("cpe:/").split(":")
    for i, part in enumerate(vuln_cpe.removeprefix("cpe:/").split(":")):
        if part and (i >= len(have) or have[i] != part):
            return False
    return True


def expected_findings(
    docs: list[dict[str, Any]], image_cpes: list[str], installed: dict[str, str]
) -> dict[str, set[str]]:
    """Package name → CVEs, straight from the documents' product trees."""
    out: dict[str, set[str]] = {name: set() for name in installed}
    for doc in docs:
        tree = doc.get("product_tree") or {}
        helpers: dict[str, dict[str, str]] = {}
        stack = list(tree.get("branches") or [])
        while stack:
            branch = stack.pop()
            stack.extend(branch.get("branches") or [])
            if "product" in branch:
                product = branch["product"]
                helpers[product["product_id"]] = product.get("product_identification_helper", {})
        relations = {
            r["full_product_name"]["product_id"]: r
            for r in tree.get("relationships") or []
            if r["category"] == "default_component_of"
        }
        for vuln in doc.get("vulnerabilities") or []:
            for status in ("fixed", "known_affected"):
                for pid in vuln["product_status"].get(status, []):
                    rel = relations.get(pid)
                    if rel is None or rel["relates_to_product_reference"] in relations:
                        continue  # unrelated, or inside a module: the image has no modules
                    cpe = helpers.get(rel["relates_to_product_reference"], {}).get("cpe", "")
                    if not any(cpe and cpe_covers(cpe, c) for c in image_cpes):
                        continue
                    purl = helpers.get(rel["product_reference"], {}).get("purl", "")
                    name = rel["product_reference"]
                    if purl:
                        if not purl.startswith("pkg:rpm/redhat/") or "rpmmod=" in purl:
                            continue
                        name = purl.removeprefix("pkg:rpm/redhat/").split("@")[0].split("?")[0]
                    if name not in installed:
                        continue
                    if status == "known_affected":
                        out[name].add(doc["document"]["tracking"]["id"])
                        continue
                    version, _, query = purl.split("@", 1)[1].partition("?")
                    quals = dict(q.split("=", 1) for q in query.split("&") if q)
                    if quals.get("arch") != "x86_64":
                        continue
                    fixed = f"{quals.get('epoch', '0')}:{version}"
                    if rpm_vercmp([(f"0:{installed[name]}", fixed)])[0] < 0:
                        out[name].add(doc["document"]["tracking"]["id"])
    return out


@pytest.fixture
async def combo(
    pg_dsn: str, tmp_path: Path, feed_server: FeedServer, shared_data: Path
) -> AsyncIterator[Combo]:
    mapping = tmp_path / "repository-to-cpe.json"
    mapping.write_bytes(
        lzma.decompress((shared_data / MAPPING / "repository-to-cpe.json.xz").read_bytes())
    )
    updaters = {"sets": ["rhel-vex"], "config": {"rhel-vex": {"url": feed_server.url}}}
    scanner = {"repo": {"rhel-repository-scanner": {"repo2cpe_mapping_file": str(mapping)}}}
    async with running_combo(
        pg_dsn,
        tmp_path / "cache",
        updaters=updaters,
        extra_config={"indexer": {"scanner": scanner}},
    ) as c:
        yield c


async def test_rhel8_image_against_vex(
    combo: Combo,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    rpm_builder: RpmBuilder,
    tmp_path: Path,
) -> None:
    root = shared_data / VULS_VEX
    for name in ("archive_latest.txt", "changes.csv", "deletions.csv", ARCHIVE):
        feed_server.put(name, (root / name).read_bytes())
    # The archive is newer than every listed change, so it alone is the data.
    feed_server.modified[ARCHIVE] = datetime(2024, 9, 1, tzinfo=UTC)
    report = await combo.run_updaters()
    assert report.outcomes == {"rhel-vex": "updated"}, report.errors

    image = tmp_path / "image"
    rpms = rpm_builder.build(
        SourceRpm(name=n, version=v, release=r, arch="x86_64") for n, v, r in PACKAGES
    )
    install_rpms(rpms, image)
    files = files_from_dir(image)
    files.update(files_from_dir(shared_data / RELEASE_FILES))
    files["root/buildinfo/content_manifests/ubi8-minimal-test-8.10-1.json"] = json.dumps(
        {"metadata": {"icm_version": 1}, "content_sets": CONTENT_SETS}
    ).encode()
    manifest = await registry.push_image("rhel8-vex-e2e", [build_layer(files)])
    indexed = await combo.index(manifest)
    found = vulnerabilities_by_package(await combo.vulnerability_report(manifest.hash))

    cpes = {r["cpe"] for r in indexed["repository"].values()}
    assert "cpe:2.3:o:redhat:enterprise_linux:8:*:baseos:*:*:*:*:*" in cpes
    mapping = json.loads(
        lzma.decompress((shared_data / MAPPING / "repository-to-cpe.json.xz").read_bytes())
    )
    image_cpes = [c for s in CONTENT_SETS for c in mapping["data"][s]["cpes"]]
    installed = {n: f"{v}-{r}" for n, v, r in PACKAGES}
    expected = expected_findings(list(archive_documents(root / ARCHIVE)), image_cpes, installed)

    got = {name: found.get((name, version), set()) for name, version in installed.items()}
    assert got == expected
    # the named cases, so an empty oracle cannot pass
    assert "CVE-2023-6212" in got["firefox"]
    assert "CVE-2023-6240" in got["perf"]
    assert "CVE-2023-6228" in got["libtiff"]
    assert got["thunderbird"] == set() and got["bpftool"] == set()
