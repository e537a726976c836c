"""The Red Hat VEX updater against real CSAF VEX documents and recorded VEX servers.

Documents are claircore's test data (real Red Hat VEX files); the recorded servers are
claircore's `server.txtar` files (a txtar of the files a VEX endpoint serves, its comment
naming the archive and its Last-Modified) and vuls-data-update's real archive excerpt with
its changes.csv / deletions.csv. Everything is served by the local feed server and read
through the production fetch, parse and ingest path.
"""

from __future__ import annotations

import copy
import email.utils
import json
import lzma
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from clair_common.db.locks import AdvisoryLocks
from clair_common.models import Vulnerability
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.store import DeltaRecords, MatcherStore
from clair_matcher.updaters import ConfigProblem, FeedError
from clair_matcher.updaters.registry import build_factories
from clair_matcher.updaters.rhel_vex import Fingerprint, RhelVexFactory, RhelVexUpdater
from clair_matcher.updaters.rhel_vex._csaf import Document
from clair_matcher.updaters.rhel_vex._records import RecordMaker, normalize_impact
from clair_matcher.updaters.rhel_vex._spool import read_spool
from tests.fixtures.feeds import FeedServer

VEX_DATA = "feeds/claircore/rhel/vex/testdata"
VULS_VEX = "feeds/vuls-data-update/pkg/fetch/redhat/vex/v1/testdata/fixtures"
NAME = "rhel-vex"
RHEL8_APPSTREAM = "cpe:2.3:a:redhat:enterprise_linux:8:*:appstream:*:*:*:*:*"


def read_data(shared_data: Path, relative: str) -> bytes:
    path = shared_data / relative
    if path.exists():
        return path.read_bytes()
    return lzma.decompress((shared_data / (relative + ".xz")).read_bytes())


def documents(shared_data: Path, relative: str) -> list[dict[str, Any]]:
    data = read_data(shared_data, relative)
    if relative.endswith(".jsonl"):
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    return [orjson.loads(data)]


def records(docs: list[dict[str, Any]], **options: bool) -> list[Vulnerability]:
    maker = RecordMaker(NAME, **options)
    return [r for doc in docs for r in maker.records(Document(doc))]


# -- mapping ---------------------------------------------------------------------------------
def test_module_records_of_cve_2024_7348(shared_data: Path) -> None:
    got = records(documents(shared_data, f"{VEX_DATA}/cve-2024-7348.jsonl"))
    assert len(got) == 910  # claircore's count for this document
    pg_repack = [
        r
        for r in got
        if r.package is not None
        and r.package.name == "pg_repack"
        and r.package.module == "postgresql:12"
        and r.repository is not None
        and r.repository.name == RHEL8_APPSTREAM
    ]
    assert len(pg_repack) == 1
    record = pg_repack[0]
    assert record.name == "CVE-2024-7348"
    assert record.package is not None and record.repository is not None
    assert record.package.kind == "binary"
    assert record.fixed_in_version == "0:1.4.6-3.module+el8.9.0+19330+c97ddbdf"
    # one record for every architecture of that build, source rpms left out
    assert record.package.arch == "aarch64|ppc64le|s390x|amd64|x86_64"
    assert record.arch_op == "pattern match"
    assert record.repository.key == "rhel-cpe-repository"
    assert record.repository.cpe == RHEL8_APPSTREAM
    assert record.severity == "CVSS:3.1/AV:N/AC:H/PR:L/UI:N/S:U/C:H/I:H/A:H"
    assert record.normalized_severity == "High"
    # references, then the document's own URL, then the errata of the fix
    *_, self_link, errata = record.links.split()
    assert (
        self_link == "https://access.redhat.com/security/data/csaf/v2/vex/2024/cve-2024-7348.json"
    )
    assert errata.startswith("https://access.redhat.com/errata/RHSA-")
    assert record.issued.startswith("2024-08-")
    assert all(r.package is not None and "src" not in r.package.arch.split("|") for r in got)


def test_known_affected_and_deleted_documents(shared_data: Path) -> None:
    docs = documents(shared_data, f"{VEX_DATA}/example_vex.jsonl")
    got = records(docs)
    assert len(got) == 546  # claircore's count
    samba = [
        r
        for r in got
        if r.name == "CVE-2023-4091"
        and r.repository is not None
        and r.repository.name == "cpe:2.3:o:redhat:enterprise_linux:8:*:*:*:*:*:*:*"
    ]
    assert len(samba) == 1
    assert samba[0].package is not None
    assert (samba[0].package.name, samba[0].package.kind, samba[0].fixed_in_version) == (
        "samba",
        "source",
        "",
    )
    assert samba[0].severity == "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:N/I:H/A:N"
    assert samba[0].normalized_severity == "Medium"
    assert "In the context of" in samba[0].description or samba[0].description
    statuses = {Document(d).tracking_id: Document(d).status for d in docs}
    assert statuses["CVE-2023-0030"] == statuses["CVE-2023-0031"] == "deleted"


def test_fixed_record_of_a_simple_document(shared_data: Path) -> None:
    (doc,) = documents(shared_data, f"{VEX_DATA}/cve-2024-24786-simple.json")
    (record,) = records([doc])
    assert record.package is not None and record.repository is not None
    assert (record.package.name, record.package.kind, record.package.arch) == (
        "cri-tools",
        "binary",
        "aarch64",
    )
    assert record.fixed_in_version == "0:1.29.0-3.1.el9"
    assert record.repository.name == "cpe:2.3:a:redhat:openshift:4.16:*:el9:*:*:*:*:*"
    assert record.severity == "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H"
    assert record.normalized_severity == "Medium"
    assert record.issued == "2024-03-05T00:00:00Z"


def _renamed(doc: dict[str, Any], name: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    product = out["product_tree"]["branches"][0]["product"]
    helper = product["product_identification_helper"]
    helper["purl"] = helper["purl"].replace("/cri-tools@", f"/{name}@")
    return out


def test_kernel_packages(shared_data: Path) -> None:
    (doc,) = documents(shared_data, f"{VEX_DATA}/cve-2024-24786-simple.json")
    runtime, headers = _renamed(doc, "kernel-core"), _renamed(doc, "kernel-headers")
    assert [r.package.name for r in records([runtime]) if r.package] == ["kernel-core"]
    assert records([headers]) == []
    assert records([runtime], ignore_kernel_packages=True) == []


def test_zero_score_without_threat_is_skipped(shared_data: Path) -> None:
    (doc,) = documents(shared_data, f"{VEX_DATA}/cve-2024-24786-simple.json")
    zero = copy.deepcopy(doc)
    vuln = zero["vulnerabilities"][0]
    vuln["scores"][0]["cvss_v3"]["baseScore"] = 0.0
    assert len(records([zero])) == 1  # the impact threat still rates it
    del vuln["threats"]
    assert records([zero]) == []
    source = copy.deepcopy(doc)
    helper = source["product_tree"]["branches"][0]["product"]["product_identification_helper"]
    helper["purl"] = helper["purl"].replace("arch=aarch64", "arch=src")
    assert records([source]) == []  # source rpms are never installed


@pytest.mark.parametrize(
    ("details", "want"),
    [
        ("None", "Unknown"),
        ("Low", "Low"),
        ("Moderate", "Medium"),
        ("Important", "High"),
        ("Critical", "Critical"),
        ("whatever", "Unknown"),
    ],
)
def test_impact_table(details: str, want: str) -> None:
    assert normalize_impact(details) == want


def test_configuration() -> None:
    factories, problems = build_factories(
        [NAME], {NAME: {"url": "http://x/vex", "ignore_kernel_packages": True}}
    )
    assert problems == {}
    (factory,) = factories
    assert isinstance(factory, RhelVexFactory)
    assert factory.updater.url == "http://x/vex/"
    assert factory.updater.fingerprint_version == "6+ignore_kernel"
    with pytest.raises(ConfigProblem, match="ignore_kernel_packages"):
        RhelVexFactory().configure({"ignore_kernel_packages": "yes"})
    with pytest.raises(ConfigProblem, match="fixed_in_version_cel"):
        RhelVexFactory().configure({"fixed_in_version_cel": "fixed_in"})


# -- recorded servers -----------------------------------------------------------------------
def serve_txtar(server: FeedServer, txtar: bytes, server_dir: Path) -> None:
    """Serves a claircore txtar server recording: each `-- /path [headers] --` section is a
    file; the comment names an archive under `server_dir` and its Last-Modified."""
    text = txtar.decode()
    comment, _, body = text.partition("\n-- ")
    parts = ("-- " + body).split("\n-- ")
    for part in parts:
        header, _, content = part.partition("\n")
        name = header.strip().removeprefix("-- ").removesuffix(" --").split()[0]
        server.put(name.lstrip("/"), content.encode())
    archive, _, headers = comment.strip().partition(" ")
    server.put(Path(archive).name, (server_dir / Path(archive).name).read_bytes())
    for header in headers.split("\\n"):
        key, _, value = header.partition(":")
        if key.lower() == "last-modified":
            server.modified[Path(archive).name] = email.utils.parsedate_to_datetime(value)


async def _fetch_entries(
    updater: RhelVexUpdater, fingerprint: str
) -> tuple[list[tuple[str, bytes]], str]:
    async with aiohttp.ClientSession() as client:
        fetched = await updater.fetch(client, fingerprint)
    try:
        return list(read_spool(fetched.path)), fetched.fingerprint
    finally:
        fetched.discard()


async def test_fetch_from_the_recorded_server(feed_server: FeedServer, shared_data: Path) -> None:
    txtar = read_data(shared_data, f"{VEX_DATA}/server.txtar")
    serve_txtar(feed_server, txtar, shared_data / VEX_DATA / "server")
    updater = RhelVexUpdater(feed_server.url)
    entries, fingerprint = await _fetch_entries(updater, "")
    # claircore's expectation: 2 changed documents after the archive's Last-Modified, 1
    # deletion, and the 4 archive members that did not change
    assert len(entries) == 7
    fp = Fingerprint.parse(fingerprint)
    assert fp.changes_etag == feed_server.etag("changes.csv")
    assert fp.deletions_etag == feed_server.etag("deletions.csv")
    assert fp.version == "6"
    assert fp.request_time is not None
    assert datetime.now(UTC) - fp.request_time < timedelta(minutes=1)
    sources = [source for source, _ in entries]
    assert sum(s.endswith("#2023/cve-2023-0044.json") for s in sources) == 0
    assert orjson.loads(entries[2][1])["document"]["tracking"] == {
        "id": "CVE-2024-0002",
        "status": "deleted",
    }
    # nothing changed since: the next fetch spools nothing, yet still answers (never Unchanged)
    again, fingerprint2 = await _fetch_entries(updater, fingerprint)
    assert again == []
    assert Fingerprint.parse(fingerprint2).changes_etag == fp.changes_etag
    assert feed_server.count("csaf_vex_2023-10-31.tar.zst") == 1


async def test_empty_archive_server(feed_server: FeedServer, shared_data: Path) -> None:
    root = shared_data / "feeds/claircore/test/rhel/testdata"
    serve_txtar(feed_server, (root / "server.txtar").read_bytes(), root / "server")
    entries, _ = await _fetch_entries(RhelVexUpdater(feed_server.url), "")
    assert {source.removeprefix(feed_server.url) for source, _ in entries} == {
        "2021/cve-2021-3762.json",
        "2020/cve-2020-8565.json",
    }


# -- runs through the scheduler --------------------------------------------------------------
ARCHIVE_LAST_MODIFIED = datetime(2024, 9, 1, tzinfo=UTC)


def serve_vuls(server: FeedServer, shared_data: Path) -> None:
    root = shared_data / VULS_VEX
    for name in (
        "archive_latest.txt",
        "changes.csv",
        "deletions.csv",
        "csaf_vex_2024-08-04.tar.zst",
    ):
        server.put(name, (root / name).read_bytes())
    server.put("2023/cve-2023-6212.json", (root / "2023/cve-2023-6212.json").read_bytes())
    server.modified["csaf_vex_2024-08-04.tar.zst"] = ARCHIVE_LAST_MODIFIED


def archive_records(shared_data: Path) -> dict[str, set[tuple[str, ...]]]:
    """CVE → record keys of every archive document, parsed straight from the tar."""
    import tarfile

    import zstandard

    out: dict[str, set[tuple[str, ...]]] = {}
    path = shared_data / VULS_VEX / "csaf_vex_2024-08-04.tar.zst"
    with (
        path.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for member in tar:
            fp = tar.extractfile(member) if member.isfile() else None
            if fp is not None:
                doc = json.loads(fp.read())
                keys = {record_key(r) for r in records([doc])}
                out[doc["document"]["tracking"]["id"]] = keys
    return out


def record_key(r: Vulnerability) -> tuple[str, ...]:
    assert r.package is not None and r.repository is not None
    return (
        r.name,
        r.package.name,
        r.package.kind,
        r.package.module,
        r.package.arch,
        r.fixed_in_version,
        r.repository.name,
    )


_LATEST = """
SELECT v.name, v.package_name, v.package_kind, v.package_module, v.package_arch,
       v.fixed_in_version, v.repo_name, v.id
FROM latest_update_operation l JOIN uo_vuln u ON u.uo = l.uo_id JOIN vuln v ON v.id = u.vuln
WHERE l.updater = 'rhel-vex'
"""


async def latest(pool: asyncpg.Pool) -> dict[tuple[str, ...], int]:
    return {tuple(row[:7]): row["id"] for row in await pool.fetch(_LATEST)}


def make_scheduler(
    pool: asyncpg.Pool, locks: AdvisoryLocks, config: dict[str, Any]
) -> UpdateScheduler:
    return UpdateScheduler(
        MatcherStore(pool),
        locks,
        sets=[NAME],
        config={NAME: config},
        period=timedelta(hours=6),
        retention=10,
    )


@pytest.fixture
async def locks(pg_dsn: str) -> AsyncIterator[AdvisoryLocks]:
    made = AdvisoryLocks(pg_dsn)
    try:
        yield made
    finally:
        await made.close()


def _csv_row(path: str, when: datetime) -> str:
    return f'"{path}","{when.isoformat()}"\n'


async def test_archive_then_delta_runs(
    matcher_pool: asyncpg.Pool, locks: AdvisoryLocks, feed_server: FeedServer, shared_data: Path
) -> None:
    serve_vuls(feed_server, shared_data)
    expected = archive_records(shared_data)
    assert {"CVE-2023-6212", "CVE-2023-6237", "CVE-2023-6240"} <= set(expected)
    scheduler = make_scheduler(matcher_pool, locks, {"url": feed_server.url})
    ops = "SELECT count(*) FROM update_operation WHERE updater = 'rhel-vex'"
    try:
        first = await scheduler.run_once()
        assert first.outcomes == {NAME: "updated"}, first.errors
        stored = await latest(matcher_pool)
        assert set(stored) == set().union(*expected.values())

        # Nothing changed: Clair's VEX updater still makes an operation, with the same links.
        second = await scheduler.run_once()
        assert second.outcomes == {NAME: "updated"}, second.errors
        assert await matcher_pool.fetchval(ops) == 2
        assert await latest(matcher_pool) == stored
        assert feed_server.count("csaf_vex_2024-08-04.tar.zst") == 1  # delta runs skip it

        # A delta: CVE-2023-6212 changed (the separately published copy), 6237 deleted.
        soon = datetime.now(UTC) + timedelta(hours=1)
        feed_server.put("changes.csv", _csv_row("2023/cve-2023-6212.json", soon).encode())
        feed_server.put("deletions.csv", _csv_row("2023/cve-2023-6237.json", soon).encode())
        third = await scheduler.run_once()
        assert third.outcomes == {NAME: "updated"}, third.errors
        after = await latest(matcher_pool)
        changed_doc = json.loads((shared_data / VULS_VEX / "2023/cve-2023-6212.json").read_bytes())
        want = {
            k
            for cve, keys in expected.items()
            if cve not in ("CVE-2023-6212", "CVE-2023-6237")
            for k in keys
        }
        want |= {record_key(r) for r in records([changed_doc])}
        assert set(after) == want
        assert not any(key[0] == "CVE-2023-6237" for key in after)
        # unchanged documents keep the very rows they had
        for key, vuln_id in stored.items():
            if key[0] not in ("CVE-2023-6212", "CVE-2023-6237"):
                assert after[key] == vuln_id

        # A malformed changed document fails the run; the previous operation stays in force.
        later = soon + timedelta(minutes=1)
        feed_server.put("2023/cve-2023-6212.json", b'{"document": {"tracking": {"id": ')
        feed_server.put("changes.csv", _csv_row("2023/cve-2023-6212.json", later).encode())
        fourth = await scheduler.run_once()
        assert fourth.outcomes == {NAME: "failed"}
        message = fourth.errors[NAME]
        assert f"{feed_server.url}2023/cve-2023-6212.json" in message
        assert "char " in message or "line " in message
        assert await matcher_pool.fetchval(ops) == 3
        assert await latest(matcher_pool) == after
    finally:
        await scheduler.close()


async def test_truncated_archive_keeps_previous_data(
    matcher_pool: asyncpg.Pool, locks: AdvisoryLocks, feed_server: FeedServer, shared_data: Path
) -> None:
    serve_vuls(feed_server, shared_data)
    scheduler = make_scheduler(matcher_pool, locks, {"url": feed_server.url})
    try:
        assert (await scheduler.run_once()).outcomes == {NAME: "updated"}
    finally:
        await scheduler.close()
    before = await latest(matcher_pool)
    archive = "csaf_vex_2024-08-04.tar.zst"
    whole = feed_server.files[archive]
    feed_server.put(archive, whole[: len(whole) // 2])
    feed_server.modified[archive] = ARCHIVE_LAST_MODIFIED
    # Toggling the kernel option changes the version: the archive is read again.
    toggled = make_scheduler(
        matcher_pool, locks, {"url": feed_server.url, "ignore_kernel_packages": True}
    )
    try:
        report = await toggled.run_once()
    finally:
        await toggled.close()
    assert report.outcomes == {NAME: "failed"}
    message = report.errors[NAME]
    assert message.startswith(f"{NAME}: {feed_server.url}{archive}: ")
    assert "compressed" in message and ("truncated" in message or "unexpected end" in message)
    assert await latest(matcher_pool) == before
    ops = "SELECT count(*) FROM update_operation WHERE updater = 'rhel-vex'"
    assert await matcher_pool.fetchval(ops) == 1


def test_parse_reports_deleted_names(tmp_path: Path, shared_data: Path) -> None:
    """`DeltaRecords.replaced` holds deleted documents and documents without records."""
    from clair_matcher.updaters.base import FetchResult
    from clair_matcher.updaters.rhel_vex._spool import SpoolWriter

    spool_path = tmp_path / "spool"
    spool = SpoolWriter(spool_path)
    for doc in documents(shared_data, f"{VEX_DATA}/example_vex.jsonl"):
        spool.add("example", orjson.dumps(doc))
    spool.add("broken", b'{"document": []}')
    spool.close()
    parsed = RhelVexUpdater().parse(FetchResult(spool_path, "", "http://x/"))
    assert isinstance(parsed, DeltaRecords)
    with pytest.raises(FeedError, match=r"rhel-vex: broken: document: expected an object"):
        for _ in parsed:
            pass
    assert {"CVE-2023-0030", "CVE-2023-0031", "CVE-2023-42670", "CVE-2023-4154"} <= parsed.replaced
