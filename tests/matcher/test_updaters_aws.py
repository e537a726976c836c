"""Amazon Linux ALAS updaters against real updateinfo documents served as mirrors.

The updateinfo excerpts are Amazon's (vuln-list-update / vuls-data-update fixtures); the
repomd.xml is claircore's real one with the updateinfo checksum rewritten to the served file,
as a real mirror's would be. Expected records are read here with a plain DOM parse.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from clair_common.models import Vulnerability
from clair_indexer.scanners.rpm_distributions import aws_from_os_release_text
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.updaters import FeedError, FetchResult, Unchanged
from clair_matcher.updaters.aws import RELEASES, AwsFactory, AwsUpdater
from tests.fixtures.feeds import FeedServer, updater_scheduler

AMAZON = "feeds/vuln-list-update/amazon/testdata/fixtures"
VULS_AMAZON = "feeds/vuls-data-update/pkg/fetch/amazon/testdata/fixtures"
REPOMD = "feeds/claircore/aws/internal/alas/testdata/test_repomd.xml"
# release label → (mirror-list path under the configured base, updateinfo excerpt)
SERVED = {
    "AL1": ("2018.03/updates/x86_64/mirror.list", f"{VULS_AMAZON}/updateinfo_1.xml.gz"),
    "AL2": ("2/core/latest/x86_64/mirror.list", f"{AMAZON}/updateinfo_2_items.xml.gz"),
    "AL2023": (
        "al2023/core/mirrors/latest/x86_64/mirror.list",
        f"{AMAZON}/updateinfo_AL2023.xml.gz",
    ),
}
_UPDATEINFO_CHECKSUM = re.compile(
    rb'(<data type="updateinfo">\s*<checksum type="sha256">)([0-9a-f]+)(</checksum>)'
)


def repomd_for(template: bytes, updateinfo_gz: bytes) -> bytes:
    """The real repomd.xml with its updateinfo checksum set to the served document's."""
    digest = hashlib.sha256(updateinfo_gz).hexdigest().encode()
    out, n = _UPDATEINFO_CHECKSUM.subn(lambda m: m[1] + digest + m[3], template)
    assert n == 1
    return out


def serve_release(
    server: FeedServer, shared_data: Path, label: str, updateinfo_gz: bytes | None = None
) -> bytes:
    """A mirror list whose first mirror is dead and second one serves the release; returns
    the served updateinfo.xml.gz."""
    list_path, excerpt = SERVED[label]
    data = updateinfo_gz if updateinfo_gz is not None else (shared_data / excerpt).read_bytes()
    live = f"mirrors/{label}/live/"
    server.put(list_path, f"{server.url}mirrors/{label}/dead\n{server.url}{live}\n".encode())
    server.put(live + "repodata/repomd.xml", repomd_for((shared_data / REPOMD).read_bytes(), data))
    server.put(live + "repodata/updateinfo.xml.gz", data)
    return data


def expected_records(updateinfo_gz: bytes) -> list[tuple[str, str, str, str, str, str, str]]:
    """(ALAS id, package, arch, fixed EVR, severity, links, issued) read with a full DOM."""
    root = ET.fromstring(gzip.decompress(updateinfo_gz))
    out = []
    for update in root.findall("update"):
        issued = update.find("issued")
        assert issued is not None
        date = issued.get("date", "").replace(" ", "T") + ":00Z"
        links = " ".join(r.get("href", "") for r in update.iterfind("references/reference"))
        for pkg in update.iterfind("pkglist/collection/package"):
            epoch = pkg.get("epoch", "0")
            evr = (
                "" if epoch == "0" else epoch + ":"
            ) + f"{pkg.get('version')}-{pkg.get('release')}"
            out.append(
                (
                    update.findtext("id", ""),
                    pkg.get("name", ""),
                    pkg.get("arch", ""),
                    evr,
                    update.findtext("severity", ""),
                    links,
                    date,
                )
            )
    return out


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _updater(label: str, server: FeedServer) -> AwsUpdater:
    release = next(r for r in RELEASES if r.label == label)
    return AwsUpdater(release, server.url + SERVED[label][0])


async def test_updater_set_names_mirror_lists_and_distributions(
    feed_server: FeedServer, client: aiohttp.ClientSession
) -> None:
    factory = AwsFactory()
    factory.configure({"url": feed_server.url.rstrip("/")})
    updaters = await factory.updater_set(client)
    assert {u.name: u.mirror_list for u in updaters if isinstance(u, AwsUpdater)} == {
        f"aws-{label}-updater": feed_server.url + path for label, (path, _) in SERVED.items()
    }
    default = AwsFactory()
    default.configure({})
    assert [
        u.mirror_list for u in await default.updater_set(client) if isinstance(u, AwsUpdater)
    ] == [
        "http://repo.us-west-2.amazonaws.com/2018.03/updates/x86_64/mirror.list",
        "https://cdn.amazonlinux.com/2/core/latest/x86_64/mirror.list",
        "https://cdn.amazonlinux.com/al2023/core/mirrors/latest/x86_64/mirror.list",
    ]
    # The aws matcher constrains DID and VersionID: the records' distribution must be what
    # the indexer's Amazon scanner reports for the release's os-release.
    cpes = {
        "AL1": "cpe:/o:amazon:linux:2018.03:ga",
        "AL2": "cpe:2.3:o:amazon:amazon_linux:2",
        "AL2023": "cpe:2.3:o:amazon:amazon_linux:2023",
    }
    for release in RELEASES:
        scanned = aws_from_os_release_text(f'CPE_NAME="{cpes[release.label]}"\n'.encode())
        assert scanned == release.dist


@pytest.mark.parametrize("label", ["AL1", "AL2", "AL2023"])
async def test_updateinfo_mapping(
    label: str, feed_server: FeedServer, shared_data: Path, client: aiohttp.ClientSession
) -> None:
    served = serve_release(feed_server, shared_data, label)
    updater = _updater(label, feed_server)
    fetched = await updater.fetch(client, "")
    assert isinstance(fetched, FetchResult)
    try:
        vulns = list(updater.parse(fetched))
    finally:
        fetched.discard()
    got = [
        (
            v.name,
            v.package.name if v.package else "",
            v.package.arch if v.package else "",
            v.fixed_in_version,
            v.severity,
            v.links,
            v.issued,
        )
        for v in vulns
    ]
    assert got == expected_records(served)
    release = next(r for r in RELEASES if r.label == label)
    for v in vulns:
        assert v.updater == f"aws-{label}-updater"
        assert v.distribution == release.dist
        assert v.arch_op == "equals"
        assert v.package is not None and v.package.kind == "binary"
        # claircore's exact, case-sensitive table: AL2023's capitalised words are Unknown.
        want = {"low": "Low", "medium": "Medium", "important": "High", "critical": "Critical"}
        assert v.normalized_severity == want.get(v.severity, "Unknown")


async def _parsed(
    label: str, server: FeedServer, client: aiohttp.ClientSession
) -> dict[tuple[str, str, str], Vulnerability]:
    updater = _updater(label, server)
    fetched = await updater.fetch(client, "")
    assert isinstance(fetched, FetchResult)
    try:
        return {
            (v.name, v.package.name, v.package.arch): v
            for v in updater.parse(fetched)
            if v.package is not None
        }
    finally:
        fetched.discard()


async def test_named_advisories(
    feed_server: FeedServer, shared_data: Path, client: aiohttp.ClientSession
) -> None:
    serve_release(feed_server, shared_data, "AL2")
    serve_release(feed_server, shared_data, "AL2023")
    al2 = await _parsed("AL2", feed_server, client)
    qemu = al2[("ALAS2-2018-942", "qemu-kvm", "x86_64")]
    assert qemu.fixed_in_version == "10:1.5.3-141.amzn2.5.3"  # a non-zero epoch is kept
    assert qemu.severity == "important" and qemu.normalized_severity == "High"
    assert qemu.links == "http://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2017-5715"
    assert qemu.issued == "2018-02-07T18:49:00Z"
    assert qemu.description.startswith("Package updates are available for Amazon Linux 2")
    java = al2[("ALAS2-2018-949", "java-1.8.0-openjdk", "x86_64")]
    assert java.fixed_in_version == "1:1.8.0.161-0.b14.amzn2"

    al2023 = await _parsed("AL2023", feed_server, client)
    rsyslog = al2023[("ALAS2023-2023-001", "rsyslog", "aarch64")]
    assert rsyslog.fixed_in_version == "8.2204.0-3.amzn2023.0.2"  # epoch 0 is omitted
    assert rsyslog.severity == "Important" and rsyslog.normalized_severity == "Unknown"
    assert rsyslog.links.split() == [
        "http://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2014-3634",
        "http://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2022-24903",
    ]
    assert {arch for (_, name, arch) in al2023 if name == "rsyslog"} == {
        "aarch64",
        "i686",
        "x86_64",
    }


async def test_fingerprint_is_the_repomd_checksum_and_unchanged_fetches_nothing(
    feed_server: FeedServer, shared_data: Path, client: aiohttp.ClientSession
) -> None:
    served = serve_release(feed_server, shared_data, "AL2023")
    updater = _updater("AL2023", feed_server)
    data_path = "mirrors/AL2023/live/repodata/updateinfo.xml.gz"
    fetched = await updater.fetch(client, "")
    assert isinstance(fetched, FetchResult)
    fetched.discard()
    assert fetched.fingerprint == hashlib.sha256(served).hexdigest()
    assert fetched.url == feed_server.url + data_path
    assert feed_server.count("mirrors/AL2023/dead/repodata/repomd.xml") == 1  # tried first
    assert feed_server.count(data_path) == 1

    assert await updater.fetch(client, fetched.fingerprint) is Unchanged
    assert feed_server.count(data_path) == 1  # only repomd.xml was read again

    # A repomd.xml promising other content than what is served is refused.
    repomd = "mirrors/AL2023/live/repodata/repomd.xml"
    feed_server.put(repomd, repomd_for((shared_data / REPOMD).read_bytes(), b"other"))
    with pytest.raises(FeedError, match=r"does not match repomd\.xml's"):
        await updater.fetch(client, fetched.fingerprint)

    # No mirror answering is one error naming what each said.
    feed_server.status_overrides[repomd] = 503
    with pytest.raises(FeedError, match=r"aws-AL2023-updater: no mirror answered: .*status 503"):
        await updater.fetch(client, "")


@pytest.fixture
async def scheduler(
    matcher_pool: asyncpg.Pool, pg_dsn: str, feed_server: FeedServer
) -> AsyncIterator[UpdateScheduler]:
    async with updater_scheduler(matcher_pool, pg_dsn, "aws", {"url": feed_server.url}) as made:
        yield made


async def test_runs_unchanged_then_broken_documents_keep_previous_data(
    scheduler: UpdateScheduler,
    matcher_pool: asyncpg.Pool,
    feed_server: FeedServer,
    shared_data: Path,
) -> None:
    served = {label: serve_release(feed_server, shared_data, label) for label in SERVED}
    names = {f"aws-{label}-updater" for label in SERVED}
    first = await scheduler.run_once()
    assert first.outcomes == dict.fromkeys(names, "updated"), first.errors
    count = "SELECT count(*) FROM vuln WHERE updater = $1"
    for label, data in served.items():
        stored = await matcher_pool.fetchval(count, f"aws-{label}-updater")
        assert stored == len(set(expected_records(data)))
    ops = "SELECT count(*) FROM update_operation"
    latest = "SELECT uo_id FROM latest_update_operation WHERE updater = 'aws-AL2-updater'"
    before = await matcher_pool.fetchval(latest)
    al2_rows = await matcher_pool.fetchval(count, "aws-AL2-updater")

    second = await scheduler.run_once()
    assert second.outcomes == dict.fromkeys(names, "unchanged")
    assert await matcher_pool.fetchval(ops) == 3

    # Truncated gzip (the repomd checksum matches the truncated file, as a broken mirror's
    # would): only AL2 fails, naming the document and how far it got.
    whole = served["AL2"]
    serve_release(feed_server, shared_data, "AL2", whole[: len(whole) // 2])
    third = await scheduler.run_once()
    assert third.outcomes == {**dict.fromkeys(names, "unchanged"), "aws-AL2-updater": "failed"}
    message = third.errors["aws-AL2-updater"]
    prefix = f"aws-AL2-updater ({feed_server.url}mirrors/AL2/live/repodata/updateinfo.xml.gz): "
    assert message.startswith(prefix)
    assert "gzip stream broken after" in message

    # Well-formed gzip of truncated XML: the parser's line and column.
    text = gzip.decompress(whole)
    serve_release(feed_server, shared_data, "AL2", gzip.compress(text[: len(text) * 2 // 3]))
    fourth = await scheduler.run_once()
    assert fourth.outcomes["aws-AL2-updater"] == "failed"
    assert re.search(r"malformed XML at line \d+, column \d+", fourth.errors["aws-AL2-updater"])

    # Malformed XML in the middle of the document.
    broken = text.replace(b"</title>", b"</titel>", 1)
    serve_release(feed_server, shared_data, "AL2", gzip.compress(broken))
    fifth = await scheduler.run_once()
    line = text[: text.index(b"</title>")].count(b"\n") + 1
    assert f"malformed XML at line {line}, column" in fifth.errors["aws-AL2-updater"]

    assert await matcher_pool.fetchval(ops) == 3
    assert await matcher_pool.fetchval(latest) == before
    assert await matcher_pool.fetchval(count, "aws-AL2-updater") == al2_rows
