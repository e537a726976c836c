"""OSV (PyPI) updater against the full PyPA advisory database and real OSV zip excerpts."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from clair_common.models import Vulnerability
from clair_matcher.updaters import FeedError, FetchResult, Unchanged
from clair_matcher.updaters._severity import cvss_base_score, qualitative
from clair_matcher.updaters.osv import OsvFactory, OsvUpdater, ecosystem_ranges, encode_query
from tests.fixtures.feeds import FeedServer, feed_server, osv_zip, pypa_osv  # noqa: F401

PIP_FIXTURE = "feeds/vuls-data-update/pkg/fetch/pip/osv/testdata/fixtures/all.zip"
VLU_FIXTURE = "feeds/vuln-list-update/osvdev/testdata/python/all.zip"


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _parse(
    server: FeedServer, client: aiohttp.ClientSession, data: bytes
) -> list[Vulnerability]:
    server.put("PyPI/all.zip", data)
    updater = OsvUpdater("pypi", server.url + "PyPI/all.zip")
    fetched = await updater.fetch(client, "")
    assert isinstance(fetched, FetchResult)
    try:
        return list(updater.parse(fetched))
    finally:
        fetched.discard()


async def test_factory_reads_ecosystems_and_reuses_the_set_on_304(
    feed_server: FeedServer,  # noqa: F811
    client: aiohttp.ClientSession,
) -> None:
    feed_server.put("ecosystems.txt", b"Alpine:v3.16\nDebian:11\nGo\nPyPI\nnpm\nRed Hat\n\n")
    factory = OsvFactory()
    factory.configure({"url": feed_server.url})
    first = await factory.updater_set(client)
    assert [(u.name, getattr(u, "url", "")) for u in first] == [
        ("osv/go", feed_server.url + "Go/all.zip"),
        ("osv/pypi", feed_server.url + "PyPI/all.zip"),
    ]
    second = await factory.updater_set(client)
    assert [u.name for u in second] == ["osv/go", "osv/pypi"]
    assert feed_server.count("ecosystems.txt") == 2

    only_npm = OsvFactory()
    only_npm.configure({"url": feed_server.url, "allowlist": ["NPM"]})
    assert list(await only_npm.updater_set(client)) == []


async def test_full_pypa_database(
    feed_server: FeedServer,  # noqa: F811
    client: aiohttp.ClientSession,
    pypa_osv: list[dict[str, object]],  # noqa: F811
) -> None:
    vulns = await _parse(feed_server, client, osv_zip(pypa_osv))
    ids = {v.name for v in vulns}
    withdrawn = {str(d["id"]) for d in pypa_osv if d.get("withdrawn")}
    assert withdrawn and not ids & withdrawn
    assert len(ids) > 2000
    requests = [v for v in vulns if v.name == "PYSEC-2018-28"]
    assert len(requests) == 1
    v = requests[0]
    assert v.package is not None and (v.package.name, v.package.kind) == ("requests", "binary")
    assert v.fixed_in_version == "fixed=2.20.0"
    assert v.repository is not None
    assert (v.repository.name, v.repository.uri) == ("pypi", "https://pypi.org/")
    assert v.distribution is None
    assert v.issued == "2018-10-09T17:29:00Z"
    assert v.updater == "osv/pypi"
    assert v.links.startswith("https://github.com/requests/requests/pull/4718 ")
    assert v.links.endswith(
        " https://osv.dev/vulnerability/CVE-2018-18074"
        " https://osv.dev/vulnerability/GHSA-x84v-xcm2-53pg"
    )
    assert (v.description, v.severity, v.normalized_severity) == ("", "", "Unknown")

    werkzeug = sorted(v.fixed_in_version for v in vulns if v.name == "PYSEC-2023-221")
    assert werkzeug == ["fixed=2.3.8", "fixed=3.0.1&introduced=3.0.0"]
    py = [v for v in vulns if v.name == "PYSEC-2022-42969"]
    assert [v.fixed_in_version for v in py] == ["lastAffected=1.11.0"]
    aiohttp_sev = next(v for v in vulns if v.name == "PYSEC-2023-246")
    assert aiohttp_sev.severity == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N"
    assert aiohttp_sev.normalized_severity == "High"  # 7.5


async def test_real_osv_zip_excerpts(
    feed_server: FeedServer,  # noqa: F811
    client: aiohttp.ClientSession,
    shared_data: Path,
) -> None:
    vulns = await _parse(feed_server, client, (shared_data / PIP_FIXTURE).read_bytes())
    names = {v.name for v in vulns}
    # MAL-2023-8 has no ranges, OSV-2022-1074 only GIT ranges: neither yields records.
    assert names == {"GHSA-2c8c-84w2-j38j", "PYSEC-2023-1"}
    plone = [v for v in vulns if v.name == "GHSA-2c8c-84w2-j38j"]
    assert {v.package.name for v in plone if v.package} == {
        "plone",
        "plone-app-event",
        "plone-app-theming",
        "plone-app-dexterity",
        "plone-supermodel",
    }
    assert {(v.severity, v.normalized_severity) for v in plone} == {
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "High")
    }
    assert all(v.description.startswith("Improper Restriction of XML") for v in plone)

    vulns = await _parse(feed_server, client, (shared_data / VLU_FIXTURE).read_bytes())
    smuggling = next(v for v in vulns if v.name == "PYSEC-2023-120")
    assert smuggling.fixed_in_version == "lastAffected=3.8.4"
    assert smuggling.package is not None and smuggling.package.name == "aiohttp"


async def test_severity_sources_and_withdrawn(
    feed_server: FeedServer,  # noqa: F811
    client: aiohttp.ClientSession,
) -> None:
    base: dict[str, object] = {
        "published": "2024-01-02T03:04:05.123456789Z",
        "affected": [
            {
                "package": {"name": "demo", "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1 0"}]}],
            },
            {
                "package": {"name": "other", "ecosystem": "npm"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            },
        ],
    }
    docs: list[dict[str, object]] = [
        base | {"id": "A", "database_specific": {"severity": "MODERATE"}},
        base
        | {"id": "B", "severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}]},
        base | {"id": "C", "severity": [{"type": "CVSS_V3", "score": "garbage"}]},
        base | {"id": "D", "withdrawn": "2020-01-01T00:00:00Z"},
        base | {"id": "E", "withdrawn": "2999-01-01T00:00:00Z"},
    ]
    vulns = {v.name: v for v in await _parse(feed_server, client, osv_zip(docs))}
    assert sorted(vulns) == ["A", "B", "C", "E"]  # npm entries are not PyPI's
    assert (vulns["A"].severity, vulns["A"].normalized_severity) == ("MODERATE", "Medium")
    assert vulns["B"].normalized_severity == "Critical"  # v2 10.0 through the v3 table
    assert (vulns["C"].severity, vulns["C"].normalized_severity) == ("garbage", "Unknown")
    assert vulns["A"].fixed_in_version == "introduced=1+0"
    assert vulns["A"].issued == "2024-01-02T03:04:05.123456Z"


def test_event_walk_and_encoding_follow_clair() -> None:
    events = [
        {"introduced": "0"},
        {"fixed": "1.0"},
        {"introduced": "2.0"},
        {"last_affected": "2.5"},
    ]
    assert [encode_query(p) for p in ecosystem_ranges(events)] == [
        "fixed=1.0",
        "introduced=2.0&lastAffected=2.5",
    ]
    assert ecosystem_ranges([{"introduced": "0"}]) == [[]]
    assert encode_query([("introduced", "1.0 rc/1"), ("fixed", "2~a")]) == (
        "fixed=2~a&introduced=1.0+rc%2F1"
    )
    assert (
        qualitative(
            cvss_base_score(
                "CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
            )
        )
        == "Critical"
    )
    assert qualitative(0.0) == "Negligible"


async def test_conditional_fetch_and_broken_archives(
    feed_server: FeedServer,  # noqa: F811
    client: aiohttp.ClientSession,
    shared_data: Path,
) -> None:
    data = (shared_data / PIP_FIXTURE).read_bytes()
    feed_server.put("PyPI/all.zip", data)
    updater = OsvUpdater("pypi", feed_server.url + "PyPI/all.zip")
    fetched = await updater.fetch(client, "")
    assert isinstance(fetched, FetchResult)
    fetched.discard()
    assert await updater.fetch(client, fetched.fingerprint) is Unchanged

    with pytest.raises(
        FeedError,
        match=r"osv/pypi \(http://127\.0\.0\.1:\d+/PyPI/all\.zip\): corrupt zip archive of \d+",
    ):
        await _parse(feed_server, client, data[: len(data) // 2])

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("GOOD.json", orjson.dumps({"id": "GOOD", "affected": []}))
        zf.writestr("BAD.json", b'{"id": "BAD", "affected": [')
    with pytest.raises(
        FeedError,
        match=r"record 1 \('BAD\.json' at byte offset \d+\): invalid JSON: .*line 1 column",
    ):
        await _parse(feed_server, client, buf.getvalue())
