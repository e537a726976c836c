"""SUSE OVAL updaters: directory discovery, the SLES 15 and openSUSE Leap excerpts, scheduling.

Documents are served gzip-compressed under SUSE's file names, as ftp.suse.com serves them.
The SLES 15 excerpt is vunnel's `suse_truncated.xml`, cut down from SUSE's
`suse.linux.enterprise.server.15.xml`; its states section was renamed `<state>` there, and is
put back to `<states>` (what SUSE's documents and OVAL use) when served. Expected records are
read here from the same documents with a whole-document parse.
"""

from __future__ import annotations

import gzip
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from clair_common.distributions import leap_distribution, sles_distribution
from clair_common.models import ZERO_TIME, Vulnerability
from clair_indexer.scanners.rpm_distributions import suse_from_os_release
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.updaters import FeedError
from clair_matcher.updaters.suse import SuseFactory, SuseUpdater, normalize_severity
from tests.fixtures.feeds import FeedServer, fetch_and_parse, updater_scheduler

SLES15 = "feeds/vunnel/tests/unit/providers/sles/test-fixtures/suse_truncated.xml"
LEAP151 = "feeds/vulnerablecode/vulnerabilities/tests/test_data/suse_oval_data.xml"
LEAP152 = (
    "feeds/vuls-data-update/pkg/fetch/suse/oval/testdata/fixtures/happy/opensuse.leap.15.2.xml.gz"
)
SLES15_FILE = "suse.linux.enterprise.server.15.xml.gz"
LEAP155_FILE = "opensuse.leap.15.5.xml.gz"
ARCH_OPS = {"equals": "equals", "not equal": "not equals", "pattern match": "pattern match"}


def sles15_document(shared_data: Path) -> bytes:
    text = (shared_data / SLES15).read_bytes()
    fixed = text.replace(b"\n  <state>\n", b"\n  <states>\n").replace(
        b"\n  </state>\n", b"\n  </states>\n"
    )
    assert fixed.count(b"<states>") == 1 and fixed.count(b"</states>") == 1
    return fixed


def index_page(names: list[str]) -> bytes:
    """An Apache-style directory index linking `names` (absolute links kept as given)."""
    rows = ['<a href="?C=N;O=D">Name</a>', '<a href="../">Parent Directory</a>']
    rows += [f'<a href="{n}">{n.rpartition("/")[2]}</a>  2024-05-01 06:00  1.2M' for n in names]
    body = "<br>\n".join(rows)
    return f"<html><head><title>Index of /oval</title></head><body>{body}</body></html>".encode()


LISTED = [
    "opensuse.10.2.xml.gz",
    "opensuse.13.2.xml.gz",
    "opensuse.leap.15.2.xml.gz",
    "opensuse.leap.15.4.xml.gz",
    "opensuse.leap.15.5.xml.gz",
    "opensuse.leap.15.6.xml.gz",
    "opensuse.leap.42.3.xml.gz",
    "opensuse.leap.micro.5.2.xml.gz",
    "opensuse.tumbleweed.xml.gz",
    "suse.linux.enterprise.12-affected.xml.gz",
    "suse.linux.enterprise.15-affected.xml.gz",
    "suse.linux.enterprise.16-patch.xml.gz",
    "suse.linux.enterprise.micro.5-affected.xml.gz",
    "suse.linux.enterprise.server.9.xml.gz",
    "suse.linux.enterprise.server.10.xml.gz",
    "/pub/projects/security/oval/suse.linux.enterprise.server.11.xml.gz",
    "suse.linux.enterprise.server.12.xml.gz",
    "suse.linux.enterprise.server.15.xml",
    "suse.linux.enterprise.server.15.xml.gz",
    "suse.linux.enterprise.server.15.xml.gz.asc",
    "suse.linux.micro.6-affected.xml.gz",
]


def serve_suse(server: FeedServer, shared_data: Path) -> dict[str, bytes]:
    """The index and two documents (the Leap 15.1 excerpt stands in for Leap 15.5's);
    file name → plain XML."""
    docs = {
        SLES15_FILE: sles15_document(shared_data),
        LEAP155_FILE: (shared_data / LEAP151).read_bytes(),
    }
    server.put("oval/", index_page(LISTED))
    for name, doc in docs.items():
        server.put(f"oval/{name}", gzip.compress(doc))
    return docs


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def expected_records(doc: bytes) -> Counter[tuple[str, str, str, str, str]]:
    """(title, package, fixed EVR, arch, arch op) per rpminfo criterion whose test, object
    and state exist and whose state has an EVR."""
    root = ET.fromstring(doc)
    by_kind: dict[str, dict[str, ET.Element]] = {}
    for el in root.iter():
        if el.get("id"):
            by_kind.setdefault(_local(el.tag), {})[el.get("id", "")] = el

    def child(el: ET.Element, name: str) -> ET.Element | None:
        return next((c for c in el if _local(c.tag) == name), None)

    out: Counter[tuple[str, str, str, str, str]] = Counter()
    for defn in by_kind["definition"].values():
        title = next(el.text or "" for el in defn.iter() if _local(el.tag) == "title")
        for crit in (el for el in defn.iter() if _local(el.tag) == "criterion"):
            test = by_kind["rpminfo_test"].get(crit.get("test_ref", ""))
            if test is None:
                continue
            obj_ref, state_ref = child(test, "object"), child(test, "state")
            assert obj_ref is not None and state_ref is not None
            obj = by_kind["rpminfo_object"].get(obj_ref.get("object_ref", ""))
            state = by_kind["rpminfo_state"].get(state_ref.get("state_ref", ""))
            if obj is None or state is None or (evr := child(state, "evr")) is None:
                continue
            name = child(obj, "name")
            arch = child(state, "arch")
            arch_text = arch.text or "" if arch is not None else ""
            arch_op = ARCH_OPS.get(arch.get("operation", ""), "") if arch is not None else ""
            key = (title, name.text or "" if name is not None else "", evr.text or "")
            out[(*key, arch_text, arch_op)] += 1
    return out


def got_records(vulns: list[Vulnerability]) -> Counter[tuple[str, str, str, str, str]]:
    return Counter(
        (v.name, v.package.name, v.fixed_in_version, v.package.arch, v.arch_op)
        for v in vulns
        if v.package is not None
    )


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_directory_discovery(
    feed_server: FeedServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    serve_suse(feed_server, shared_data)
    factory = SuseFactory()
    factory.configure({"url": feed_server.url + "oval"})
    updaters = await factory.updater_set(client)
    found = {u.name: u for u in updaters if isinstance(u, SuseUpdater)}
    assert list(found) == [
        "suse-updater-opensuse.leap.15.5",
        "suse-updater-opensuse.leap.15.6",
        "suse-updater-suse.linux.enterprise.server.11",
        "suse-updater-suse.linux.enterprise.server.12",
        "suse-updater-suse.linux.enterprise.server.15",
    ]
    base = feed_server.url + "oval/"
    sles15 = found["suse-updater-suse.linux.enterprise.server.15"]
    assert (sles15.url, sles15.compression) == (base + SLES15_FILE, "gzip")
    eleven = found["suse-updater-suse.linux.enterprise.server.11"]
    assert eleven.url == feed_server.url + LISTED[15].lstrip("/")
    # The distributions are the ones the SUSE scanner reports for those systems.
    assert sles15.dist == sles_distribution("15")
    assert sles15.dist == suse_from_os_release({"ID": "sles", "VERSION_ID": "15.1"})
    leap = found["suse-updater-opensuse.leap.15.6"]
    assert leap.dist == leap_distribution("15.6")
    assert leap.dist == suse_from_os_release({"ID": "opensuse-leap", "VERSION_ID": "15.6"})
    assert (leap.dist.did, leap.dist.name, leap.dist.pretty_name) == (
        "opensuse-leap",
        "openSUSE Leap",
        "openSUSE Leap 15.6",
    )

    factory.configure({})
    assert factory.base == "https://ftp.suse.com/pub/projects/security/oval/"
    factory.configure({"url": feed_server.url + "missing/"})
    with pytest.raises(FeedError, match="unexpected status 404"):
        await factory.updater_set(client)


async def test_sles15_records(
    feed_server: FeedServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    docs = serve_suse(feed_server, shared_data)
    updater = SuseUpdater(sles_distribution("15"), feed_server.url + "oval/" + SLES15_FILE)
    _, vulns = await fetch_and_parse(updater, client)
    want = expected_records(docs[SLES15_FILE])
    assert got_records(vulns) == want
    # Spelled out: krb5's binaries for CVE-2010-1323 and kernel-default for CVE-2021-29154 (two
    # service-pack streams, one listed twice); release checks, "not affected" (version 0) and
    # signature states carry no EVR, and the excerpt's missing tests are skipped.
    assert {(t, p, e) for t, p, e, _, _ in want} == {
        *(
            ("CVE-2010-1323", p, "0:1.15.2-4.25")
            for p in (
                "krb5",
                "krb5-32bit",
                "krb5-client",
                "krb5-devel",
                "krb5-plugin-preauth-otp",
                "krb5-plugin-preauth-pkinit",
                "krb5-plugin-kdb-ldap",
                "krb5-server",
            )
        ),
        ("CVE-2021-29154", "kernel-default", "0:4.12.14-150.72.1"),
        ("CVE-2021-29154", "kernel-default", "0:4.12.14-197.89.2"),
    }
    kernel = next(v for v in vulns if v.package and v.package.name == "kernel-default")
    assert kernel.package is not None
    assert (kernel.package.arch, kernel.arch_op) == (
        "(aarch64|ppc64le|s390x|x86_64)",
        "pattern match",
    )
    assert (kernel.severity, kernel.normalized_severity) == ("Important", "High")
    krb5 = next(v for v in vulns if v.package and v.package.name == "krb5")
    assert (krb5.severity, krb5.normalized_severity) == ("Moderate", "Medium")
    assert krb5.updater == "suse-updater-suse.linux.enterprise.server.15"
    assert krb5.issued == ZERO_TIME  # Clair's SUSE records take no issued date
    assert krb5.description.startswith("\n    MIT Kerberos 5 (aka krb5) 1.3.x, 1.4.x")
    # XML attribute normalization turns the excerpt's line breaks inside two URLs to blanks.
    threads = (
        "https://lists.opensuse.org/archives/list/security-announce@lists.opensuse.org/thread/"
    )
    assert krb5.links == " ".join(
        [
            "https://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2010-1323",
            "https://www.suse.com/security/cve/CVE-2010-1323",
            threads + "JM6O73UJO5HWG5 RGIFFSFKGTDNFSGYWB/#JM6O73UJO5HWG5RGIFFSFKGTDNFSGYWB",
            threads + "QQHP7MDAGKGRMV UG64TKDHFDLMRIRJQG/#QQHP7MDAGKGRMVUG64TKDHFDLMRIRJQG",
            "https://www.suse.com/support/kb/doc/?id=7008287",
            "https://bugzilla.suse.com/650650",
            "https://www.suse.com/security/cve/CVE-2010-1323/",
            "https://nvd.nist.gov/vuln/detail/CVE-2010-1323",
        ]
    )
    assert all(v.distribution == sles_distribution("15") for v in vulns)
    assert all(v.package and v.package.kind == "binary" and not v.package.module for v in vulns)


async def test_leap_excerpts(
    feed_server: FeedServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    leap151 = (shared_data / LEAP151).read_bytes()
    leap152 = gzip.decompress((shared_data / LEAP152).read_bytes())
    feed_server.put("151.xml", leap151)
    feed_server.put("152.xml.gz", gzip.compress(leap152))
    one = SuseUpdater(leap_distribution("15.1"), feed_server.url + "151.xml")
    one.configure({"compression": "none"})
    _, vulns = await fetch_and_parse(one, client)
    assert got_records(vulns) == expected_records(leap151)
    assert {(v.name, v.package.name if v.package else "") for v in vulns} == {
        ("CVE-2009-4112", "cacti"),
        ("CVE-2009-4112", "cacti-spine"),
        ("CVE-2011-2767", "apache2-mod_perl"),
        ("CVE-2011-2767", "apache2-mod_perl-devel"),
    }
    assert {(v.severity, v.normalized_severity) for v in vulns} == {
        ("Low", "Low"),
        ("Moderate", "Medium"),
    }
    assert all(v.distribution == leap_distribution("15.1") for v in vulns)

    two = SuseUpdater(leap_distribution("15.2"), feed_server.url + "152.xml.gz")
    _, (fastjar,) = await fetch_and_parse(two, client)
    assert got_records([fastjar]) == expected_records(leap152)
    assert fastjar.package is not None
    assert (fastjar.package.name, fastjar.fixed_in_version) == ("fastjar", "0:0.98-lp152.4.3.1")
    assert (fastjar.package.arch, fastjar.arch_op) == ("(i586|x86_64)", "pattern match")
    assert fastjar.updater == "suse-updater-opensuse.leap.15.2"


def test_severity_table() -> None:
    table = {
        "None": "Unknown",
        "Low": "Low",
        "Moderate": "Medium",
        "Important": "High",
        "Critical": "Critical",
    }
    for word, want in table.items():
        assert normalize_severity(word) == want
    for other in ("moderate", "Medium", "High", ""):
        assert normalize_severity(other) == "Unknown"


@pytest.fixture
async def scheduler(
    matcher_pool: asyncpg.Pool, pg_dsn: str, feed_server: FeedServer
) -> AsyncIterator[UpdateScheduler]:
    async with updater_scheduler(
        matcher_pool, pg_dsn, "suse", {"url": feed_server.url + "oval/"}
    ) as made:
        yield made


async def test_runs_unchanged_then_truncated_document_keeps_previous_data(
    scheduler: UpdateScheduler,
    matcher_pool: asyncpg.Pool,
    feed_server: FeedServer,
    shared_data: Path,
) -> None:
    docs = serve_suse(feed_server, shared_data)
    sles, leap = "suse-updater-suse.linux.enterprise.server.15", "suse-updater-opensuse.leap.15.5"
    first = await scheduler.run_once()
    assert first.outcomes[sles] == first.outcomes[leap] == "updated"
    # The other listed documents are not served here: those updaters fail on their own.
    assert first.outcomes["suse-updater-suse.linux.enterprise.server.12"] == "failed"
    count = f"SELECT count(*) FROM vuln WHERE updater = '{sles}'"
    stored = await matcher_pool.fetchval(count)
    assert stored == len(expected_records(docs[SLES15_FILE]))  # the repeated record once
    latest = f"SELECT uo_id FROM latest_update_operation WHERE updater = '{sles}'"
    before = await matcher_pool.fetchval(latest)
    path = "oval/" + SLES15_FILE
    fingerprint = await matcher_pool.fetchval(
        "SELECT fingerprint FROM update_operation WHERE id = $1", before
    )
    assert json.loads(fingerprint) == {
        "Etag": feed_server.etag(path),
        "Date": format_datetime(feed_server.modified[path], usegmt=True),
    }
    ops = "SELECT count(*) FROM update_operation"
    assert await matcher_pool.fetchval(ops) == 2

    second = await scheduler.run_once()
    assert second.outcomes[sles] == second.outcomes[leap] == "unchanged"
    assert await matcher_pool.fetchval(ops) == 2

    whole = docs[SLES15_FILE]
    broken = whole[: len(whole) // 2]
    feed_server.put(path, gzip.compress(broken))
    third = await scheduler.run_once()
    assert (third.outcomes[sles], third.outcomes[leap]) == ("failed", "unchanged")
    url = feed_server.url + path
    line = broken.count(b"\n") + 1
    prefix = f"{sles} ({url}): malformed XML at line {line}, column"
    assert third.errors[sles].startswith(prefix)

    compressed = gzip.compress(whole)
    feed_server.put(path, compressed[:-20])
    fourth = await scheduler.run_once()
    assert fourth.outcomes[sles] == "failed"
    assert f"{sles}: GET {url}: gzip stream truncated" in fourth.errors[sles]
    assert await matcher_pool.fetchval(ops) == 2
    assert await matcher_pool.fetchval(latest) == before
    assert await matcher_pool.fetchval(count) == stored

    feed_server.put(path, gzip.compress(whole + b"\n"))
    fifth = await scheduler.run_once()
    assert fifth.outcomes[sles] == "updated"
    assert await matcher_pool.fetchval(count) == stored
