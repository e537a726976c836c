"""clair.kev and clair.epss: the full CISA KEV catalog and real EPSS files, as claircore
shapes them, fetched conditionally from the local feed server, looked up through CVE aliases.
"""

from __future__ import annotations

import gzip
import logging
import lzma
from collections.abc import AsyncIterator, Sequence
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from clair_common.models import IndexReport, Vulnerability, VulnerabilityReport
from clair_matcher.enrichers import ENRICHMENT_SETS, EnrichmentRecord, build_enrichers
from clair_matcher.enrichers.epss import EpssEnricher, current_feed_url
from clair_matcher.enrichers.kev import KevEnricher
from clair_matcher.updaters import FeedError, FetchResult, Unchanged
from tests.fixtures.feeds import FeedServer

KEV = "feeds/kev/known_exploited_vulnerabilities.json.xz"
EPSS_EXCERPT = "feeds/claircore/enricher/epss/testdata/data.csv"
EPSS_FIXTURES = "feeds/vuls-data-update/pkg/fetch/epss/testdata/fixtures"
RAPID_RESET = {
    "cve": "CVE-2023-44487",
    "vulnerability_name": "HTTP/2 Rapid Reset Attack Vulnerability",
    "catalog_version": "2025.08.25",
    "date_added": "2023-10-10",
    "short_description": "HTTP/2 contains a rapid reset vulnerability that allows for a"
    " distributed denial-of-service attack (DDoS).",
    "required_action": "Apply mitigations per vendor instructions, follow applicable BOD 22-01"
    " guidance for cloud services, or discontinue use of the product if mitigations are"
    " unavailable.",
    "due_date": "2023-10-31",
    "known_ransomware_campaign_use": "Unknown",
}


def kev_catalog(shared_data: Path) -> bytes:
    return lzma.decompress((shared_data / KEV).read_bytes())


def epss_excerpt(shared_data: Path) -> bytes:
    """claircore's EPSS excerpt (a real file's first rows), gzip'd as FIRST serves it."""
    return gzip.compress((shared_data / EPSS_EXCERPT).read_bytes())


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _records(enricher: KevEnricher | EpssEnricher, fetched: object) -> list[Any]:
    assert isinstance(fetched, FetchResult)
    try:
        return list(enricher.parse(fetched))
    finally:
        fetched.discard()


async def test_kev_full_catalog_and_conditional_fetch(
    feed_server: FeedServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    feed_server.put("kev/known_exploited_vulnerabilities.json", kev_catalog(shared_data))
    kev = KevEnricher()
    kev.configure({"feed_root": feed_server.url + "kev/known_exploited_vulnerabilities.json"})
    fetched = await kev.fetch(client, "")
    assert isinstance(fetched, FetchResult)
    fingerprint = fetched.fingerprint
    modified = feed_server.modified["kev/known_exploited_vulnerabilities.json"]
    assert fingerprint == format_datetime(modified, usegmt=True)
    records = await _records(kev, fetched)
    assert len(records) == 1404
    by_cve = {r.tags[0]: r.data for r in records}
    assert by_cve["CVE-2023-44487"] == RAPID_RESET
    assert list(by_cve["CVE-2023-44487"]) == list(RAPID_RESET)  # claircore's field order
    # If-Modified-Since with the stored Last-Modified: 304, unchanged.
    assert await kev.fetch(client, fingerprint) is Unchanged


def test_kev_configuration() -> None:
    kev = KevEnricher()
    kev.configure({"feed": "http://mirror.test/kev.json"})
    assert kev.feed == "http://mirror.test/kev.json"
    _, problems = build_enrichers(["clair.kev"], {"clair.kev": {"feed_root": "http://m/kev"}})
    assert "URL not pointing to JSON" in problems["clair.kev"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"[]", "expected an object with a 'vulnerabilities' array"),
        (b'{"vulnerabilities": [{"cveID": 7}]}', "vulnerabilities[0].cveID: expected a string"),
        (b'{"vulnerabilities": [{"vendorProject": "x"}]}', "vulnerabilities[0].cveID: missing"),
        (b'{"vulnerabilities": [', "invalid JSON"),
    ],
)
async def test_kev_bad_catalogs_name_the_entry(
    feed_server: FeedServer, client: aiohttp.ClientSession, doc: bytes, message: str
) -> None:
    feed_server.put("bad.json", doc)
    kev = KevEnricher()
    kev.configure({"feed_root": feed_server.url + "bad.json"})
    with pytest.raises(FeedError, match=message.replace("[", r"\[").replace("]", r"\]")):
        await _records(kev, await kev.fetch(client, ""))


async def test_epss_excerpt_and_etag(
    feed_server: FeedServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    feed_server.put("epss_scores-2024-10-25.csv.gz", epss_excerpt(shared_data))
    epss = EpssEnricher()
    epss.configure({"feed_root": feed_server.url + "epss_scores-2024-10-25.csv.gz"})
    fetched = await epss.fetch(client, "")
    assert isinstance(fetched, FetchResult)
    fingerprint = fetched.fingerprint
    assert fingerprint == feed_server.etag("epss_scores-2024-10-25.csv.gz")
    records = await _records(epss, fetched)
    assert len(records) == 29
    first = records[0]
    assert first.tags == ["CVE-1999-0005"]
    assert first.data == {
        "modelVersion": "v2023.03.01",
        "date": "2024-10-25T00:00:00+0000",
        "cve": "CVE-1999-0005",
        "epss": 0.91963,
        "percentile": 0.9903,
    }
    assert orjson.dumps(first.data).startswith(b'{"modelVersion":"v2023.03.01","date":')
    assert await epss.fetch(client, fingerprint) is Unchanged


@pytest.mark.parametrize(
    ("name", "model", "rows"),
    [
        ("epss_scores-2022-02-04.csv.gz", "v2022.01.01", 2),
        ("epss_scores-2023-03-07.csv.gz", "v2023.03.01", 2),
    ],
)
async def test_epss_real_daily_files(
    feed_server: FeedServer,
    client: aiohttp.ClientSession,
    shared_data: Path,
    name: str,
    model: str,
    rows: int,
) -> None:
    feed_server.put(name, (shared_data / EPSS_FIXTURES / name).read_bytes())
    epss = EpssEnricher()
    epss.configure({"feed_root": feed_server.url + name})
    records = await _records(epss, await epss.fetch(client, ""))
    assert len(records) == rows
    assert {r.data["modelVersion"] for r in records} == {model}
    assert records[0].data["cve"] == "CVE-2020-5902"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # Files from before FIRST added the metadata line: claircore refuses them too.
        ("epss_scores-2021-04-14.csv.gz", "line 1: expected '#model_version"),
        ("epss_scores-2021-09-01.csv.gz", "line 1: expected '#model_version"),
    ],
)
async def test_epss_files_without_metadata_are_refused(
    feed_server: FeedServer,
    client: aiohttp.ClientSession,
    shared_data: Path,
    name: str,
    message: str,
) -> None:
    feed_server.put(name, (shared_data / EPSS_FIXTURES / name).read_bytes())
    epss = EpssEnricher()
    epss.configure({"feed_root": feed_server.url + name})
    with pytest.raises(FeedError, match=message):
        await _records(epss, await epss.fetch(client, ""))


async def test_epss_bad_rows_are_skipped_and_counted(
    feed_server: FeedServer,
    client: aiohttp.ClientSession,
    shared_data: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = (shared_data / EPSS_EXCERPT).read_bytes()
    broken = (
        text.rstrip(b"\n")
        + b"\nCVE-2024-0001,not-a-number,0.5\nCVE-2024-0002,0.1\nCVE-2024-0003,nan,0.1\n"
    )
    feed_server.put("e.csv.gz", gzip.compress(broken))
    feed_server.put("truncated.csv.gz", gzip.compress(text)[:-20])
    epss = EpssEnricher()
    epss.configure({"feed_root": feed_server.url + "e.csv.gz"})
    with caplog.at_level(logging.WARNING, "clair.matcher.enrichers.epss"):
        records = await _records(epss, await epss.fetch(client, ""))
    assert len(records) == 29
    assert "skipped 3 malformed rows (first at line 32)" in caplog.text
    epss.configure({"feed_root": feed_server.url + "truncated.csv.gz"})
    with pytest.raises(FeedError, match="broken gzip stream"):
        await _records(epss, await epss.fetch(client, ""))


def test_epss_configuration_and_default_feed() -> None:
    _, problems = build_enrichers(["clair.epss"], {"clair.epss": {"feed_root": "http://m/x.csv"}})
    assert "expected a '.gz' file" in problems["clair.epss"]
    assert current_feed_url().startswith("https://epss.cyentia.com/epss_scores-")
    assert current_feed_url().endswith(".csv.gz")
    assert {"clair.cvss", "clair.kev", "clair.epss"} <= set(ENRICHMENT_SETS)


async def test_lookup_through_cve_aliases_as_well_as_names() -> None:
    """An OSV advisory's CVE aliases are in its links; a CVE-named vulnerability has its own."""
    kev_records = [
        EnrichmentRecord(["CVE-2023-44487"], RAPID_RESET),
        EnrichmentRecord(["CVE-2021-44228"], {"cve": "CVE-2021-44228"}),
    ]
    asked: list[list[str]] = []

    async def lookup(updater: str, tags: Sequence[str]) -> list[EnrichmentRecord]:
        assert updater == "clair.kev"
        asked.append(list(tags))
        return [r for r in kev_records if set(r.tags) & set(tags)]

    report = VulnerabilityReport(
        IndexReport(manifest_hash=""),
        vulnerabilities={
            "1": Vulnerability(
                id="1",
                name="GO-2023-2102",
                links="https://go.dev/issue/63417 https://osv.dev/vulnerability/CVE-2023-44487"
                " https://osv.dev/vulnerability/CVE-2023-39325",
            ),
            "2": Vulnerability(id="2", name="CVE-2021-44228"),
            "3": Vulnerability(id="3", name="GO-2022-0001", description="no CVE here"),
        },
    )
    (found,) = await KevEnricher().enrich(lookup, report)
    assert found == {"1": [RAPID_RESET], "2": [{"cve": "CVE-2021-44228"}]}
    assert asked == [["CVE-2021-44228", "CVE-2023-39325", "CVE-2023-44487"]]
    assert (
        await EpssEnricher().enrich(lookup_none, VulnerabilityReport(IndexReport(manifest_hash="")))
        == []
    )


async def lookup_none(updater: str, tags: Sequence[str]) -> list[EnrichmentRecord]:
    return []
