"""End to end: a Red Hat container image matched as a whole (rhcc) against Red Hat VEX data.

The feed is claircore's real VEX document for CVE-2022-38752, whose product tree names the
`rh-sso-7/sso76-openshift-rhel8` images fixed at tag `7.6-22` (for amd64, ppc64le and s390x),
packed into a VEX archive served by the local feed server and read by the production `rhel-vex`
updater. The images carry the build Dockerfile Red Hat images have in `root/buildinfo/`, with
the labels the indexer's `rhel_containerscanner` reads: one is a build before the fix, one the
fixed build.
"""

from __future__ import annotations

import io
import lzma
import tarfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from tests.fixtures.combo import Combo, running_combo, vulnerabilities_by_package
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer
from tests.fixtures.registry import LocalRegistry

DOCUMENT = "feeds/claircore/rhel/vex/testdata/cve-2022-38752.json.xz"
ARCHIVE = "csaf_vex_2024-01-01.tar.zst"
IMAGE = "rh-sso-7/sso76-openshift-rhel8"
COMPONENT = "rh-sso-7-sso76-openshift-rhel8-container"


def vex_archive(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor().compress(raw.getvalue())


def image_layer(version: str, release: str) -> bytes:
    dockerfile = (
        "FROM sha256:0000\n"
        f'LABEL com.redhat.component="{COMPONENT}" \\\n'
        f'      name="{IMAGE}" \\\n'
        f'      version="{version}" \\\n'
        f'      release="{release}" \\\n'
        '      architecture="x86_64"\n'
    )
    path = f"root/buildinfo/Dockerfile-{IMAGE.replace('/', '-')}-{version}-{release}"
    rhel = b"Red Hat Enterprise Linux release 8.6 (Ootpa)\n"
    return build_layer({path: dockerfile.encode(), "etc/redhat-release": rhel})


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Combo]:
    updaters = {"sets": ["rhel-vex"], "config": {"rhel-vex": {"url": feed_server.url}}}
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


async def test_container_image_against_vex(
    combo: Combo, feed_server: FeedServer, registry: LocalRegistry, shared_data: Path
) -> None:
    document = lzma.decompress((shared_data / DOCUMENT).read_bytes())
    feed_server.put("archive_latest.txt", ARCHIVE.encode())
    feed_server.put(ARCHIVE, vex_archive({"2022/cve-2022-38752.json": document}))
    feed_server.put("changes.csv", b"")
    feed_server.put("deletions.csv", b"")
    feed_server.modified[ARCHIVE] = datetime(2024, 1, 1, tzinfo=UTC)
    report = await combo.run_updaters()
    assert report.outcomes == {"rhel-vex": "updated"}, report.errors

    before = await registry.push_image("rhcc-before", [image_layer("7.6", "21")])
    fixed = await registry.push_image("rhcc-fixed", [image_layer("7.6", "22")])
    indexed = await combo.index(before)
    (repo,) = indexed["repository"].values()
    assert (repo["name"], repo["key"]) == ("Red Hat Container Catalog", "rhcc-container-repository")
    names = {(p["name"], p["version"], p["kind"]) for p in indexed["packages"].values()}
    assert names == {(COMPONENT, "7.6-21", "source"), (IMAGE, "7.6-21", "binary")}
    # The labels describe the image, not a package of its RHEL 8 (etc/redhat-release is in
    # the layer): no distribution, as in Clair.
    for envs in indexed["environments"].values():
        assert [e["distribution_id"] for e in envs] == [""]

    found = vulnerabilities_by_package(await combo.vulnerability_report(before.hash))
    assert found == {(IMAGE, "7.6-21"): {"CVE-2022-38752"}}
    vuln = next(
        v
        for v in (await combo.vulnerability_report(before.hash))["vulnerabilities"].values()
        if v["name"] == "CVE-2022-38752"
    )
    assert vuln["fixed_in_version"] == "7.6-22"
    assert vuln["repository"]["key"] == "rhcc-container-repository"

    await combo.index(fixed)
    assert vulnerabilities_by_package(await combo.vulnerability_report(fixed.hash)) == {}
