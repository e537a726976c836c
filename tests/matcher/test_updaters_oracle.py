"""Oracle ELSA OVAL updaters against real ELSA excerpts, served bzip2-compressed as
linux.oracle.com serves them. Expected records are read here with a whole-document parse.
"""

from __future__ import annotations

import bz2
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from clair_common.distributions import oracle_distribution
from clair_common.models import Vulnerability
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.updaters import ConfigProblem
from clair_matcher.updaters.oracle import OracleFactory, OracleUpdater
from tests.fixtures.feeds import FeedServer, fetch_and_parse, updater_scheduler

ELSA_ALL = (
    "feeds/vuls-data-update/pkg/fetch/oracle/linux/testdata/fixtures/com.oracle.elsa-all.xml.bz2"
)
POSITIVE = "feeds/vuln-list-update/oracle/oval/testdata/all-positive-data.xml.bz2"
VUNNEL = "feeds/vunnel/tests/unit/providers/oracle/test-fixtures"
OVAL = "{http://oval.mitre.org/XMLSchema/oval-definitions-5}"
LINUX = "{http://oval.mitre.org/XMLSchema/oval-definitions-5#linux}"
KSPLICE_CPE = "cpe:/a:oracle:linux:8::userspace_ksplice"

Record = tuple[str, str, str, str, str]  # title, major, package, fixed EVR, module


def expected_records(doc: bytes) -> set[Record]:
    """Per definition: platform `Oracle Linux N` x module x rpminfo criterion with an EVR."""
    root = ET.fromstring(doc)
    tests = {t.get("id"): t for t in root.iter(f"{LINUX}rpminfo_test")}
    names = {o.get("id"): o.findtext(f"{LINUX}name") for o in root.iter(f"{LINUX}rpminfo_object")}
    evrs = {s.get("id"): s.findtext(f"{LINUX}evr") for s in root.iter(f"{LINUX}rpminfo_state")}
    out = set()
    for defn in root.iter(f"{OVAL}definition"):
        title = defn.findtext(f"{OVAL}metadata/{OVAL}title") or ""
        majors = [
            m[1]
            for p in defn.iter(f"{OVAL}platform")
            if (m := re.fullmatch(r"Oracle Linux (\d+)", p.text or ""))
        ]
        comments = [c.get("comment", "") for c in defn.iter(f"{OVAL}criterion")]
        modules = [m[1] for c in comments if (m := re.search(r"Module (.+) is enabled", c))]
        for criterion in defn.iter(f"{OVAL}criterion"):
            test = tests.get(criterion.get("test_ref"))
            if test is None:
                continue
            obj, state = test.find(f"{LINUX}object"), test.find(f"{LINUX}state")
            assert obj is not None and state is not None
            evr = evrs.get(state.get("state_ref"))
            name = names.get(obj.get("object_ref"))
            if evr is None or not name:
                continue  # not a version check, or an excerpt's dangling reference
            for major in majors:
                for module in modules or [""]:
                    out.add((title, major, name, evr, module))
    return out


def _records(vulns: list[Vulnerability]) -> set[Record]:
    return {
        (
            v.name,
            v.distribution.version if v.distribution else "",
            v.package.name if v.package else "",
            v.fixed_in_version,
            v.package.module if v.package else "",
        )
        for v in vulns
    }


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _fetch_parse(
    server: FeedServer, client: aiohttp.ClientSession, year: int, data: bytes
) -> list[Vulnerability]:
    server.put(f"com.oracle.elsa-{year}.xml.bz2", data)
    _, vulns = await fetch_and_parse(OracleUpdater(year, server.url), client)
    return vulns


async def test_updater_set_years_and_config(client: aiohttp.ClientSession) -> None:
    factory = OracleFactory()
    factory.configure({})
    updaters = await factory.updater_set(client)
    now = datetime.now(UTC).year
    assert [u.name for u in updaters] == [f"oracle-{y}-updater" for y in range(2007, now + 1)]
    first = updaters[0]
    assert isinstance(first, OracleUpdater)
    assert first.url == "https://linux.oracle.com/security/oval/com.oracle.elsa-2007.xml.bz2"
    assert first.compression == "bzip2"
    factory.configure({"url": "http://mirror.example/oval", "years": [2023, 2021, 2023]})
    urls = [u.url for u in await factory.updater_set(client) if isinstance(u, OracleUpdater)]
    assert urls == [
        "http://mirror.example/oval/com.oracle.elsa-2021.xml.bz2",
        "http://mirror.example/oval/com.oracle.elsa-2023.xml.bz2",
    ]
    with pytest.raises(ConfigProblem, match=r"updaters\.config\.oracle\.years"):
        factory.configure({"years": ["2021"]})
    with pytest.raises(ConfigProblem, match=r"oracle-2021-updater.compression"):
        OracleUpdater(2021).configure({"compression": "lzma"})


async def test_elsa_records_platforms_modules_and_severity(
    feed_server: FeedServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    packed = (shared_data / ELSA_ALL).read_bytes()
    vulns = await _fetch_parse(feed_server, client, 2023, packed)
    assert _records(vulns) == expected_records(bz2.decompress(packed))
    bind = [v for v in vulns if v.package and v.package.name == "bind"]
    assert len({v.fixed_in_version for v in bind}) == 1
    one = bind[0]
    # Clair keeps the title as the XML has it, surrounding newlines included.
    assert one.name == "\nELSA-2007-0057:  Moderate: bind security update  (MODERATE)\n"
    assert one.fixed_in_version == "30:9.3.3-8.el5"
    assert (one.severity, one.normalized_severity) == ("MODERATE", "Medium")
    assert one.issued == "2007-06-26T00:00:00Z"
    assert one.updater == "oracle-2023-updater"
    assert one.distribution == oracle_distribution(5)
    assert one.package is not None and (one.package.arch, one.arch_op) == ("", "")
    (hivex,) = {
        (v.package.module, v.distribution.version)
        for v in vulns
        if v.package and v.distribution and v.package.name == "hivex"
    }
    assert hivex == ("virt:kvm_utils", "8")
    assert {
        v.normalized_severity for v in vulns if v.name.strip().startswith("ELSA-2023-12342")
    } == {"High"}


async def test_more_excerpts(
    feed_server: FeedServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    mock = (shared_data / VUNNEL / "mock_data").read_bytes()
    vulns = await _fetch_parse(feed_server, client, 2019, bz2.compress(mock))
    assert _records(vulns) == expected_records(mock)

    # Definitions only (no tests, objects or states): every criterion dangles, nothing out.
    per_arch = (shared_data / VUNNEL / "mock_per_arch_data").read_bytes()
    assert await _fetch_parse(feed_server, client, 2020, bz2.compress(per_arch)) == []
    positive = (shared_data / POSITIVE).read_bytes()
    assert await _fetch_parse(feed_server, client, 2018, positive) == []


def _with_cpes(doc: bytes, cpes: list[str]) -> bytes:
    listing = "".join(f"<cpe>{c}</cpe>" for c in cpes)
    out, n = re.subn(
        rb"</advisory>",
        f"<affected_cpe_list>{listing}</affected_cpe_list></advisory>".encode(),
        doc,
    )
    assert n == 1
    return out


@pytest.mark.parametrize(
    ("cpes", "kept"),
    [
        ([], True),
        ([KSPLICE_CPE], False),
        ([KSPLICE_CPE, "cpe:2.3:a:oracle:linux:8:*:userspace_ksplice:*:*:*:*:*"], False),
        ([KSPLICE_CPE, "cpe:/a:oracle:linux:8::baseos_latest"], True),
        ([KSPLICE_CPE, "not-a-cpe"], True),
    ],
)
async def test_userspace_ksplice_only_definitions_are_dropped(
    feed_server: FeedServer,
    client: aiohttp.ClientSession,
    shared_data: Path,
    cpes: list[str],
    kept: bool,
) -> None:
    doc = _with_cpes((shared_data / VUNNEL / "mock_ksplice_data").read_bytes(), cpes)
    vulns = await _fetch_parse(feed_server, client, 2021, bz2.compress(doc))
    assert bool(vulns) is kept
    if kept:
        assert _records(vulns) == expected_records(doc)
        assert {v.name.strip() for v in vulns} == {
            "ELSA-2021-9151: openssl security update (IMPORTANT)"
        }


@pytest.fixture
async def scheduler(
    matcher_pool: asyncpg.Pool, pg_dsn: str, feed_server: FeedServer
) -> AsyncIterator[UpdateScheduler]:
    async with updater_scheduler(
        matcher_pool, pg_dsn, "oracle", {"url": feed_server.url, "years": [2021, 2023]}
    ) as made:
        yield made


async def test_runs_unchanged_then_broken_documents_keep_previous_data(
    scheduler: UpdateScheduler,
    matcher_pool: asyncpg.Pool,
    feed_server: FeedServer,
    shared_data: Path,
) -> None:
    ksplice = (shared_data / VUNNEL / "mock_ksplice_data").read_bytes()
    feed_server.put("com.oracle.elsa-2021.xml.bz2", bz2.compress(ksplice))
    feed_server.put("com.oracle.elsa-2023.xml.bz2", (shared_data / ELSA_ALL).read_bytes())
    names = {"oracle-2021-updater", "oracle-2023-updater"}
    first = await scheduler.run_once()
    assert first.outcomes == dict.fromkeys(names, "updated"), first.errors
    count = "SELECT count(*) FROM vuln WHERE updater = 'oracle-2021-updater'"
    stored = await matcher_pool.fetchval(count)
    assert stored > 0
    ops = "SELECT count(*) FROM update_operation"
    latest = "SELECT uo_id FROM latest_update_operation WHERE updater = 'oracle-2021-updater'"
    before = await matcher_pool.fetchval(latest)

    second = await scheduler.run_once()
    assert second.outcomes == dict.fromkeys(names, "unchanged")
    assert await matcher_pool.fetchval(ops) == 2

    url = feed_server.url + "com.oracle.elsa-2021.xml.bz2"
    packed = bz2.compress(ksplice)
    feed_server.put("com.oracle.elsa-2021.xml.bz2", packed[: len(packed) // 2])
    third = await scheduler.run_once()
    assert third.outcomes == {"oracle-2021-updater": "failed", "oracle-2023-updater": "unchanged"}
    assert re.fullmatch(
        rf"oracle-2021-updater: GET {re.escape(url)}: bzip2 stream truncated after \d+ bytes",
        third.errors["oracle-2021-updater"],
    )

    cut = ksplice[: len(ksplice) // 2]
    feed_server.put("com.oracle.elsa-2021.xml.bz2", bz2.compress(cut))
    fourth = await scheduler.run_once()
    line = cut.count(b"\n") + 1
    assert fourth.errors["oracle-2021-updater"].startswith(
        f"oracle-2021-updater ({url}): malformed XML at line {line}, column "
    )
    assert await matcher_pool.fetchval(ops) == 2
    assert await matcher_pool.fetchval(latest) == before
    assert await matcher_pool.fetchval(count) == stored
