"""Photon OVAL updaters against the real Photon 3 document (and the Photon 1/5 excerpts).

The documents are served as plain XML, as packages.vmware.com serves them. Expected records
are read here from the same documents with a whole-document parse.
"""

from __future__ import annotations

import gzip
import json
import lzma
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from clair_indexer.scanners.rpm_distributions import photon_from_os_release
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.updaters.photon import PhotonFactory, PhotonUpdater
from tests.fixtures.feeds import FeedServer, fetch_and_parse, updater_scheduler

PHOTON3 = "feeds/claircore/photon/testdata/com.vmware.phsa-photon3.xml.xz"
EXCERPTS = "feeds/vuls-data-update/pkg/fetch/photon/oval/testdata/fixtures/happy"
OVAL = "{http://oval.mitre.org/XMLSchema/oval-definitions-5}"
LINUX = "{http://oval.mitre.org/XMLSchema/oval-definitions-5#linux}"


def photon_documents(shared_data: Path) -> dict[str, bytes]:
    """Served path → plain XML, as on packages.vmware.com."""
    out = {"com.vmware.phsa-photon3.xml": lzma.decompress((shared_data / PHOTON3).read_bytes())}
    for n in (1, 5):
        name = f"com.vmware.phsa-photon{n}.xml"
        out[name] = gzip.decompress((shared_data / EXCERPTS / f"{name}.gz").read_bytes())
    return out


def expected_records(doc: bytes) -> set[tuple[str, str, str]]:
    """(title, package, fixed EVR) for every criterion whose rpminfo state has an EVR."""
    root = ET.fromstring(doc)
    tests = {t.get("id"): t for t in root.iter(f"{LINUX}rpminfo_test")}
    names = {o.get("id"): o.findtext(f"{LINUX}name") for o in root.iter(f"{LINUX}rpminfo_object")}
    evrs = {s.get("id"): s.findtext(f"{LINUX}evr") for s in root.iter(f"{LINUX}rpminfo_state")}
    out = set()
    for defn in root.iter(f"{OVAL}definition"):
        title = defn.findtext(f"{OVAL}metadata/{OVAL}title") or ""
        for criterion in defn.iter(f"{OVAL}criterion"):
            test = tests[criterion.get("test_ref")]
            obj = test.find(f"{LINUX}object")
            state = test.find(f"{LINUX}state")
            assert obj is not None and state is not None
            evr = evrs[state.get("state_ref")]
            if evr is not None:
                out.add((title, names[obj.get("object_ref")] or "", evr))
    return out


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_updater_set_names_and_urls(client: aiohttp.ClientSession) -> None:
    factory = PhotonFactory()
    factory.configure({})
    updaters = await factory.updater_set(client)
    assert [u.name for u in updaters] == [f"photon-updater-{n}.0" for n in range(1, 6)]
    first = updaters[0]
    assert isinstance(first, PhotonUpdater)
    assert first.url == (
        "https://packages.vmware.com/photon/photon_oval_definitions/com.vmware.phsa-photon1.xml"
    )
    factory.configure({"url": "http://mirror.example/photon"})
    (three,) = [u for u in await factory.updater_set(client) if u.name.endswith("3.0")]
    assert isinstance(three, PhotonUpdater)
    assert three.url == "http://mirror.example/photon/com.vmware.phsa-photon3.xml"
    three.configure({"url": "http://other.example/p3.xml.gz", "compression": "gzip"})
    assert (three.url, three.compression) == ("http://other.example/p3.xml.gz", "gzip")


async def test_photon3_records(
    feed_server: FeedServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    docs = photon_documents(shared_data)
    feed_server.put_many(docs.items())
    updater = PhotonUpdater("3.0", feed_server.url)
    _, vulns = await fetch_and_parse(updater, client)
    doc = docs["com.vmware.phsa-photon3.xml"]
    got = {(v.name, v.package.name if v.package else "", v.fixed_in_version) for v in vulns}
    assert got == expected_records(doc)
    assert len(vulns) == len(got)  # no criterion counted twice

    # The distribution is exactly what the Photon scanner reports for Photon 3.
    scanned = photon_from_os_release({"ID": "photon", "VERSION_ID": "3.0"})
    assert all(v.distribution == scanned for v in vulns)
    assert all(v.package and v.package.kind == "binary" and not v.package.arch for v in vulns)
    assert all(v.updater == "photon-updater-3.0" and v.arch_op == "" for v in vulns)

    sqlite = {
        (v.package.name if v.package else "", v.fixed_in_version): v
        for v in vulns
        if v.name.startswith("PHSA-2020:00001 ")
    }
    assert sorted(sqlite) == [
        ("sqlite", "0:3.27.2-5.ph3"),
        ("sqlite-devel", "0:3.27.2-5.ph3"),
        ("sqlite-libs", "0:3.27.2-5.ph3"),
    ]
    one = sqlite[("sqlite", "0:3.27.2-5.ph3")]
    assert one.name == "PHSA-2020:00001 sqlite Security Update. (Important)"
    assert (one.severity, one.normalized_severity) == ("Important", "High")
    assert one.issued == "2019-10-23T00:00:00Z"
    assert one.description == "This update upgrade sqlite to 3.27.2-5.ph3 #Fixes {'CVE-2019-16168'}"
    assert one.links == (
        "https://github.com/vmware/photon/wiki/Security-Updates-3.0-0036"
        " https://nvd.nist.gov/vuln/detail?vulnId=CVE-2019-16168"
    )

    # Clair's table, exact and case-sensitive: every severity the document uses is mapped.
    table = {"Low": "Low", "Moderate": "Medium", "Important": "High", "Critical": "Critical"}
    used = {v.severity for v in vulns}
    assert used == set(re.findall(r"<severity>([^<]*)</severity>", doc.decode()))
    assert {(v.severity, v.normalized_severity) for v in vulns} == {
        (s, table.get(s, "Unknown")) for s in used
    }


async def test_photon5_excerpt(
    feed_server: FeedServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    feed_server.put_many(photon_documents(shared_data).items())
    _, vulns = await fetch_and_parse(PhotonUpdater("5.0", feed_server.url), client)
    assert {(v.package.name if v.package else "", v.fixed_in_version) for v in vulns} == {
        ("ansible", "0:2.14.12-1.ph5"),
        ("ansible-devel", "0:2.14.12-1.ph5"),
    }
    assert {v.name for v in vulns} == {"PHSA-2024:00001 ansible Security Update. (Important)"}
    assert all(v.distribution and v.distribution.version == "5.0" for v in vulns)
    assert vulns[0].links.split()[1:] == [
        "https://nvd.nist.gov/vuln/detail?vulnId=CVE-2023-5115",
        "https://nvd.nist.gov/vuln/detail?vulnId=CVE-2023-5764",
    ]


@pytest.fixture
async def scheduler(
    matcher_pool: asyncpg.Pool, pg_dsn: str, feed_server: FeedServer
) -> AsyncIterator[UpdateScheduler]:
    async with updater_scheduler(matcher_pool, pg_dsn, "photon", {"url": feed_server.url}) as made:
        yield made


async def test_runs_unchanged_then_truncated_document_keeps_previous_data(
    scheduler: UpdateScheduler,
    matcher_pool: asyncpg.Pool,
    feed_server: FeedServer,
    shared_data: Path,
) -> None:
    docs = photon_documents(shared_data)
    feed_server.put_many(docs.items())
    first = await scheduler.run_once()
    served = {"photon-updater-1.0", "photon-updater-3.0", "photon-updater-5.0"}
    missing = {"photon-updater-2.0", "photon-updater-4.0"}
    assert first.outcomes == {
        **dict.fromkeys(served, "updated"),
        **dict.fromkeys(missing, "failed"),
    }
    assert "unexpected status 404" in first.errors["photon-updater-2.0"]
    count = "SELECT count(*) FROM vuln WHERE updater = 'photon-updater-3.0'"
    stored = await matcher_pool.fetchval(count)
    assert stored == len(expected_records(docs["com.vmware.phsa-photon3.xml"]))
    ops = "SELECT count(*) FROM update_operation"
    latest = "SELECT uo_id FROM latest_update_operation WHERE updater = 'photon-updater-3.0'"
    before = await matcher_pool.fetchval(latest)
    fingerprint = await matcher_pool.fetchval(
        "SELECT fingerprint FROM update_operation WHERE id = $1", before
    )
    path = "com.vmware.phsa-photon3.xml"
    assert json.loads(fingerprint) == {
        "Etag": feed_server.etag(path),
        "Date": format_datetime(feed_server.modified[path], usegmt=True),
    }

    second = await scheduler.run_once()
    assert {k: v for k, v in second.outcomes.items() if k in served} == dict.fromkeys(
        served, "unchanged"
    )
    assert await matcher_pool.fetchval(ops) == 3
    assert await matcher_pool.fetchval(latest) == before

    whole = docs["com.vmware.phsa-photon3.xml"]
    broken = whole[: len(whole) * 2 // 3]
    feed_server.put("com.vmware.phsa-photon3.xml", broken)
    third = await scheduler.run_once()
    assert third.outcomes["photon-updater-3.0"] == "failed"
    assert third.outcomes["photon-updater-5.0"] == "unchanged"
    message = third.errors["photon-updater-3.0"]
    url = feed_server.url + "com.vmware.phsa-photon3.xml"
    line = broken.count(b"\n") + 1
    assert message.startswith(f"photon-updater-3.0 ({url}): malformed XML at line {line}, column")
    assert await matcher_pool.fetchval(ops) == 3
    assert await matcher_pool.fetchval(latest) == before
    assert await matcher_pool.fetchval(count) == stored

    # The fixed document is fetched again (its fingerprint changed) and stored as before.
    feed_server.put("com.vmware.phsa-photon3.xml", whole + b"\n")
    fourth = await scheduler.run_once()
    assert fourth.outcomes["photon-updater-3.0"] == "updated"
    assert await matcher_pool.fetchval(count) == stored
