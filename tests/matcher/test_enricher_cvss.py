"""The `clair.cvss` enricher against real NVD 2.0 documents served as yearly feed files.

Year 2016 is claircore's NVD excerpt with its real `.meta`; year 2017 is a real NVD API 2.0
page (vunnel's fixture, same document format) with a `.meta` written for it. Expected records
are picked out of the documents here, straight from the NVD schema's field names.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from clair_common.db.locks import AdvisoryLocks
from clair_common.models import IndexReport, Vulnerability, VulnerabilityReport
from clair_matcher.enrichers import CvssEnricher, EnrichmentRecord, build_enrichers
from clair_matcher.enrichers.cvss import MEDIA_TYPE
from clair_matcher.enrichment import enrich_report
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.store import MatcherStore
from clair_matcher.updaters import ConfigProblem, FetchResult, Unchanged
from tests.fixtures.feeds import FeedServer

CLAIRCORE_FEED = "feeds/claircore/enricher/cvss/testdata"
NVD_PAGE = "feeds/vunnel/tests/unit/providers/nvd/test-fixtures/full-page.json"
ROOT = "nvd/"


def meta_for(document: bytes) -> bytes:
    """A `.meta` file as NVD writes them, for an uncompressed year document."""
    gz = gzip.compress(document)
    return (
        "lastModifiedDate:2025-08-07T03:01:41-04:00\r\n"
        f"size:{len(document)}\r\nzipSize:{len(gz)}\r\ngzSize:{len(gz)}\r\n"
        f"sha256:{hashlib.sha256(document).hexdigest().upper()}\r\n"
    ).encode()


def serve_nvd(server: FeedServer, shared_data: Path) -> dict[int, bytes]:
    """Years 2016 and 2017 under `nvd/`; returns year → uncompressed document."""
    docs = {
        2016: (shared_data / CLAIRCORE_FEED / "feed.json").read_bytes(),
        2017: (shared_data / NVD_PAGE).read_bytes(),
    }
    server.put(
        f"{ROOT}nvdcve-2.0-2016.meta", (shared_data / CLAIRCORE_FEED / "feed.meta").read_bytes()
    )
    server.put(f"{ROOT}nvdcve-2.0-2017.meta", meta_for(docs[2017]))
    for year, doc in docs.items():
        server.put(f"{ROOT}nvdcve-2.0-{year}.json.gz", gzip.compress(doc))
    return docs


def expected_records(docs: dict[int, bytes]) -> list[tuple[list[str], Any]]:
    """Per CVE not Rejected: the cvssData of the first Primary v3.1 metric, else v3.0."""
    out = []
    for year in sorted(docs):
        for item in orjson.loads(docs[year])["vulnerabilities"]:
            cve = item["cve"]
            if cve.get("vulnStatus") == "Rejected":
                continue
            metrics = cve.get("metrics", {})
            v31 = [m for m in metrics.get("cvssMetricV31", []) if m["type"] == "Primary"]
            v30 = [m for m in metrics.get("cvssMetricV30", []) if m["type"] == "Primary"]
            chosen = (v31 or v30)[:1]
            if chosen:
                out.append(([cve["id"]], chosen[0]["cvssData"]))
    return out


def enricher_for(server: FeedServer) -> CvssEnricher:
    enricher = CvssEnricher()
    enricher.configure({"feed_root": server.url + ROOT, "first_year": 2016, "last_year": 2017})
    return enricher


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def test_configuration() -> None:
    enricher = CvssEnricher()
    enricher.configure({})
    assert enricher.feed_root == "https://nvd.nist.gov/feeds/json/cve/2.0/"
    assert enricher.years()[0] == 2002 and len(enricher.years()) >= 24
    with pytest.raises(ConfigProblem, match="trailing slash"):
        enricher.configure({"feed_root": "http://mirror/nvd"})
    enrichers, problems = build_enrichers(
        ["alpine", "clair.cvss"], {"clair.cvss": {"feed_root": "x"}}
    )
    assert enrichers == [] and "trailing slash" in problems["clair.cvss"]


async def test_records_and_fingerprint(
    feed_server: FeedServer, shared_data: Path, client: aiohttp.ClientSession
) -> None:
    docs = serve_nvd(feed_server, shared_data)
    enricher = enricher_for(feed_server)
    fetched = await enricher.fetch(client, "")
    assert isinstance(fetched, FetchResult)
    try:
        records = list(enricher.parse(fetched))
    finally:
        fetched.discard()
    assert not fetched.path.exists()
    assert records == [EnrichmentRecord(tags, data) for tags, data in expected_records(docs)]
    by_id = {r.tags[0]: r.data for r in records}
    assert "CVE-2016-3197" not in by_id  # Rejected
    # Only a Secondary v3.1 metric: the Primary v3.0 one is kept.
    assert by_id["CVE-2016-2781"]["version"] == "3.0"
    assert by_id["CVE-2016-3674"]["vectorString"].startswith("CVSS:3.1/")
    # 2017: 25 CVEs analysed by NVD; 10 carry only their CNA's (Secondary) score, 3 none.
    assert len(records) == 2 + 25

    sha_2017 = hashlib.sha256(docs[2017]).hexdigest().upper()
    assert orjson.loads(fetched.fingerprint) == {
        "2016": "D165E29D8D911F3F1E0919A5C1E8C423B14AF1C38F57847DD0A8CC9DBD027618",
        "2017": sha_2017,
    }
    assert fetched.fingerprint == orjson.dumps(orjson.loads(fetched.fingerprint)).decode()

    # Unchanged metas: nothing but the metas is read again.
    assert await enricher.fetch(client, fetched.fingerprint) is Unchanged
    assert feed_server.count(f"{ROOT}nvdcve-2.0-2016.json.gz") == 1
    assert feed_server.count(f"{ROOT}nvdcve-2.0-2016.meta") == 2

    # One changed year refetches every year, as Clair does.
    changed = docs[2017].replace(b'"Analyzed"', b'"Modified"', 1)
    feed_server.put(f"{ROOT}nvdcve-2.0-2017.meta", meta_for(changed))
    again = await enricher.fetch(client, fetched.fingerprint)
    assert isinstance(again, FetchResult)
    again.discard()
    assert feed_server.count(f"{ROOT}nvdcve-2.0-2016.json.gz") == 2
    assert orjson.loads(again.fingerprint)["2017"] == hashlib.sha256(changed).hexdigest().upper()


def _report(vulns: dict[str, Vulnerability]) -> VulnerabilityReport:
    return VulnerabilityReport(
        index=IndexReport(manifest_hash="sha256:" + "0" * 64), vulnerabilities=vulns
    )


async def test_enrichment_lookup_uses_the_newest_operation(
    matcher_pool: asyncpg.Pool, shared_data: Path
) -> None:
    docs = {2016: (shared_data / CLAIRCORE_FEED / "feed.json").read_bytes()}
    records = expected_records(docs)
    first = await MatcherStore(matcher_pool).update_enrichments("clair.cvss", "fp1", iter(records))
    assert (first.records, first.inserted, first.linked) == (2, 2, 2)
    by_id = {tags[0]: data for tags, data in records}
    report = _report(
        {
            "1": Vulnerability(name="CVE-2016-3674"),
            "2": Vulnerability(
                name="ALAS-2016-1",
                links="https://nvd.nist.gov/vuln/detail/CVE-2016-2781 "
                "http://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2016-3674",
            ),
            "3": Vulnerability(name="CVE-2016-3197"),  # rejected: no record
            "4": Vulnerability(name="GHSA-xxxx-yyyy-zzzz"),
        }
    )
    enricher = CvssEnricher()
    got = await enrich_report(MatcherStore(matcher_pool), report, [enricher])
    assert got == {
        MEDIA_TYPE: [
            {
                "1": [by_id["CVE-2016-3674"]],
                "2": [by_id["CVE-2016-2781"], by_id["CVE-2016-3674"]],
            }
        ]
    }

    # A new snapshot without CVE-2016-2781 and a changed score for CVE-2016-3674: only the
    # newest operation's records count; unchanged rows are shared by hash.
    changed = dict(by_id["CVE-2016-3674"], baseScore=1.0)
    second = await MatcherStore(matcher_pool).update_enrichments(
        "clair.cvss", "fp2", [(["CVE-2016-3674"], changed)]
    )
    assert (second.records, second.inserted, second.linked) == (1, 1, 1)
    got = await enrich_report(MatcherStore(matcher_pool), report, [enricher])
    assert got == {MEDIA_TYPE: [{"1": [changed], "2": [changed]}]}
    again = await MatcherStore(matcher_pool).update_enrichments(
        "clair.cvss", "fp3", [(["CVE-2016-3674"], changed)]
    )
    assert (again.inserted, again.linked) == (0, 1)

    # Nothing to enrich: no media type at all.
    assert (
        await enrich_report(
            MatcherStore(matcher_pool), _report({"4": report.vulnerabilities["4"]}), [enricher]
        )
        == {}
    )

    # A failing enricher is logged and skipped; the report keeps going.
    await matcher_pool.execute("ALTER TABLE enrichment RENAME TO enrichment_gone")
    assert await enrich_report(MatcherStore(matcher_pool), report, [enricher]) == {}


@pytest.fixture
async def scheduler(
    matcher_pool: asyncpg.Pool, pg_dsn: str, feed_server: FeedServer
) -> AsyncIterator[UpdateScheduler]:
    locks = AdvisoryLocks(pg_dsn)
    config = {
        "clair.cvss": {"feed_root": feed_server.url + ROOT, "first_year": 2016, "last_year": 2017}
    }
    made = UpdateScheduler(
        MatcherStore(matcher_pool),
        locks,
        sets=["clair.cvss"],
        config=config,
        period=timedelta(hours=6),
        retention=10,
    )
    off = UpdateScheduler(
        MatcherStore(matcher_pool),
        locks,
        sets=["clair.cvss"],
        config=config,
        period=timedelta(hours=6),
        retention=10,
        disable_enrichment=True,
    )
    assert off.enrichers == [] and made.enrichers
    try:
        yield made
    finally:
        await made.close()
        await off.close()
        await locks.close()


async def test_scheduler_runs_unchanged_then_truncated_keep_previous_data(
    scheduler: UpdateScheduler,
    matcher_pool: asyncpg.Pool,
    feed_server: FeedServer,
    shared_data: Path,
) -> None:
    docs = serve_nvd(feed_server, shared_data)
    first = await scheduler.run_once()
    assert first.outcomes == {"clair.cvss": "updated"}, first.errors
    ops = (
        "SELECT count(*) FROM update_operation WHERE updater = 'clair.cvss' AND kind = 'enrichment'"
    )
    assert await matcher_pool.fetchval(ops) == 1
    rows = await matcher_pool.fetch("SELECT tags, data FROM enrichment ORDER BY id")
    assert [(list(r["tags"]), r["data"]) for r in rows] == expected_records(docs)
    latest = (
        "SELECT uo_id FROM latest_update_operation"
        " WHERE updater = 'clair.cvss' AND kind = 'enrichment'"
    )
    before = await matcher_pool.fetchval(latest)

    second = await scheduler.run_once()
    assert second.outcomes == {"clair.cvss": "unchanged"}
    assert await matcher_pool.fetchval(ops) == 1

    # A new 2017 file whose download is cut short: the position is named, nothing changes.
    changed = docs[2017].replace(b'"Analyzed"', b'"Modified"', 1)
    feed_server.put(f"{ROOT}nvdcve-2.0-2017.meta", meta_for(changed))
    feed_server.put(f"{ROOT}nvdcve-2.0-2017.json.gz", gzip.compress(changed[: len(changed) // 2]))
    third = await scheduler.run_once()
    assert third.outcomes == {"clair.cvss": "failed"}
    message = third.errors["clair.cvss"]
    assert message.startswith(f"clair.cvss ({feed_server.url}{ROOT}nvdcve-2.0-2017.json.gz): ")
    assert "line " in message and "character offset" in message
    assert await matcher_pool.fetchval(ops) == 1
    assert await matcher_pool.fetchval(latest) == before
    assert await matcher_pool.fetchval("SELECT count(*) FROM enrichment") == len(rows)
