"""Ubuntu OVAL updaters: Launchpad series discovery, the bionic CVE OVAL excerpt, dpkginfo rules.

The excerpt (vulnerablecode's `ubuntu_oval_data.xml`, a piece of Canonical's bionic CVE OVAL)
is served bzip2-compressed the way security-metadata.canonical.com serves it: a request for
`com.ubuntu.<codename>.cve.oval.xml` is answered with the `.bz2` file, naming it in
Content-Location, typed `application/x-bzip2`. Expected records are read here from the same
document with a whole-document parse.
"""

from __future__ import annotations

import bz2
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from clair_common.distributions import ubuntu_distribution
from clair_common.models import ZERO_TIME
from clair_indexer.scanners import osrelease
from clair_indexer.scanners.distributions import ubuntu_from_os_release
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.updaters import ConfigProblem, FeedError, Unchanged
from clair_matcher.updaters.registry import build_factories
from clair_matcher.updaters.ubuntu import UbuntuFactory, UbuntuUpdater, normalize_severity
from tests.fixtures.feeds import FeedServer, fetch_and_parse, updater_scheduler

EXCERPT = "feeds/vulnerablecode/vulnerabilities/tests/test_data/ubuntu_oval_data.xml"
BIONIC_OS_RELEASE = "layers/claircore/ubuntu/testdata/dist/18.04/etc/os-release"
OVAL = "{http://oval.mitre.org/XMLSchema/oval-definitions-5}"
LINUX = "{http://oval.mitre.org/XMLSchema/oval-definitions-5#linux}"
BZIP2 = "application/x-bzip2"


class CanonicalServer(FeedServer):
    """A FeedServer that negotiates like Canonical's: `X.xml` is answered with `X.xml.bz2`."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.lstrip("/")
        negotiated = path + ".bz2"
        if (
            path not in self.files
            and path not in self.status_overrides
            and negotiated in self.files
        ):
            self.requests[(request.method, path)] += 1
            resp: web.StreamResponse = self._file(request, negotiated)
            resp.headers["Content-Location"] = negotiated.rpartition("/")[2]
        else:
            resp = await super()._handle(request)
            negotiated = path
        if negotiated.endswith(".bz2") and resp.status in (200, 304):
            resp.headers["Content-Type"] = BZIP2
        return resp


@pytest.fixture
async def canonical() -> AsyncIterator[CanonicalServer]:
    server = CanonicalServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -- served data -------------------------------------------------------------------------------
def series_collection(series: list[tuple[str, str, str]]) -> bytes:
    """A Launchpad `ubuntu/series` collection: (name, version, status) per entry."""
    active = {"Active Development", "Current Stable Release", "Supported"}
    entries = [
        {
            "self_link": f"https://api.launchpad.net/1.0/ubuntu/{name}",
            "resource_type_link": "https://api.launchpad.net/1.0/#distro_series",
            "name": name,
            "version": version,
            "displayname": name.capitalize(),
            "status": status,
            "active": status in active,
            "supported": status in active,
        }
        for name, version, status in series
    ]
    doc = {"start": 0, "total_size": len(entries), "entries": entries}
    return json.dumps(doc, indent=2).encode()


SERIES = [
    ("jammy", "22.04", "Supported"),  # active, but this server has no document for it
    ("bionic", "18.04", "Supported"),
    ("trusty", "14.04", "Obsolete"),
]


def bionic_document(shared_data: Path) -> bytes:
    return (shared_data / EXCERPT).read_bytes()


def serve_ubuntu(
    server: FeedServer, shared_data: Path, series: list[tuple[str, str, str]] = SERIES
) -> bytes:
    """Serves the series list and the bionic document (also under any other served series
    but jammy); the plain bionic document."""
    doc = bionic_document(shared_data)
    server.put("api/ubuntu/series", series_collection(series))
    for name, _, _ in series:
        if name != "jammy":
            server.put(f"oval/com.ubuntu.{name}.cve.oval.xml.bz2", bz2.compress(doc))
    return doc


def ubuntu_config(server: FeedServer) -> dict[str, Any]:
    return {"url": server.url + "api/", "oval_url": server.url + "oval/"}


def expected_records(doc: bytes) -> set[tuple[str, str, str]]:
    """(title, binary package, fixed version) for every dpkginfo criterion, names expanded."""
    root = ET.fromstring(doc)
    tests = {t.get("id"): t for t in root.iter(f"{LINUX}dpkginfo_test")}
    objects = {o.get("id"): o for o in root.iter(f"{LINUX}dpkginfo_object")}
    evrs = {s.get("id"): s.findtext(f"{LINUX}evr") for s in root.iter(f"{LINUX}dpkginfo_state")}
    variables = {
        v.get("id"): [x.text or "" for x in v] for v in root.iter(f"{OVAL}constant_variable")
    }
    out = set()
    for defn in root.iter(f"{OVAL}definition"):
        title = defn.findtext(f"{OVAL}metadata/{OVAL}title") or ""
        for criterion in defn.iter(f"{OVAL}criterion"):
            test = tests[criterion.get("test_ref")]
            obj_ref = test.find(f"{LINUX}object")
            state_ref = test.find(f"{LINUX}state")
            assert obj_ref is not None and state_ref is not None
            name = objects[obj_ref.get("object_ref")].find(f"{LINUX}name")
            assert name is not None
            var = name.get("var_ref")
            names = variables[var] if var else [name.text or ""]
            out |= {(title, n, evrs[state_ref.get("state_ref")] or "") for n in names}
    return out


# -- discovery ---------------------------------------------------------------------------------
async def test_series_discovery_follows_negotiation_and_caches_the_list(
    canonical: CanonicalServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    serve_ubuntu(canonical, shared_data)
    factory = UbuntuFactory()
    factory.configure(
        {**ubuntu_config(canonical), "force": [{"name": "xenial", "version": "16.04"}]}
    )
    updaters = await factory.updater_set(client)
    assert [u.name for u in updaters] == ["ubuntu/updater/bionic", "ubuntu/updater/xenial"]
    bionic, xenial = updaters
    assert isinstance(bionic, UbuntuUpdater) and isinstance(xenial, UbuntuUpdater)
    # The HEAD named the .bz2 file in Content-Location, typed as bzip2.
    oval = canonical.url + "oval/"
    assert (bionic.url, bionic.use_bzip2) == (oval + "com.ubuntu.bionic.cve.oval.xml.bz2", True)
    assert (xenial.url, xenial.use_bzip2) == (oval + "com.ubuntu.xenial.cve.oval.xml.bz2", True)
    assert canonical.count("oval/com.ubuntu.jammy.cve.oval.xml", "HEAD") == 1  # 404: skipped
    assert canonical.count("oval/com.ubuntu.trusty.cve.oval.xml", "HEAD") == 0  # not active
    assert canonical.count("oval/com.ubuntu.xenial.cve.oval.xml", "HEAD") == 0  # forced

    # Distributions equal what the Ubuntu scanner reports, for discovered and forced series.
    kv = osrelease.parse((shared_data / BIONIC_OS_RELEASE).read_bytes())
    assert bionic.dist == ubuntu_from_os_release(kv) == ubuntu_distribution("18.04", "bionic")
    assert bionic.dist.version == "18.04 (Bionic)" and bionic.dist.pretty_name == "Ubuntu 18.04"
    assert xenial.dist == ubuntu_distribution("16.04", "xenial")

    # An unchanged series list (If-None-Match → 304) reuses the discovery: no new HEADs.
    again = await factory.updater_set(client)
    assert [u.name for u in again] == [u.name for u in updaters]
    assert canonical.count("api/ubuntu/series") == 2
    assert canonical.count("oval/com.ubuntu.bionic.cve.oval.xml", "HEAD") == 1

    # A plain document is fetched as plain; an updater's own config overrides discovery.
    canonical.put("oval/com.ubuntu.noble.cve.oval.xml", b"<oval_definitions/>")
    canonical.put("api/ubuntu/series", series_collection([("noble", "24.04", "Supported")]))
    (noble,) = [u for u in await factory.updater_set(client) if "noble" in u.name]
    assert isinstance(noble, UbuntuUpdater) and not noble.use_bzip2
    assert noble.url == oval + "com.ubuntu.noble.cve.oval.xml"
    noble.configure({"url": "http://mirror.example/noble.xml.bz2", "use_bzip2": True})
    assert (noble.url, noble.use_bzip2) == ("http://mirror.example/noble.xml.bz2", True)
    with pytest.raises(ConfigProblem, match="use_bzip2"):
        noble.configure({"use_bzip2": "yes"})


async def test_defaults_and_config_problems() -> None:
    factory = UbuntuFactory()
    factory.configure({})
    assert factory.api == "https://api.launchpad.net/1.0/ubuntu/series"
    assert factory.oval_base == "https://security-metadata.canonical.com/oval/"
    factory.configure({"url": "http://lp.example/devel", "name": "kubuntu"})
    assert factory.api == "http://lp.example/devel/kubuntu/series"
    for bad in ({"force": {"name": "x"}}, {"force": [{"name": "x"}]}, {"force": ["x"]}):
        with pytest.raises(ConfigProblem, match="force"):
            UbuntuFactory().configure(bad)
    _, problems = build_factories(["ubuntu"], {"ubuntu": {"force": [{"version": "1"}]}})
    assert "updaters.config.ubuntu.force" in problems["ubuntu"]


async def test_series_errors_fail_the_set(
    canonical: CanonicalServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    serve_ubuntu(canonical, shared_data)
    factory = UbuntuFactory()
    factory.configure(ubuntu_config(canonical))
    canonical.status_overrides["oval/com.ubuntu.bionic.cve.oval.xml"] = 503
    with pytest.raises(FeedError, match=r"HEAD .*bionic.*unexpected status 503"):
        await factory.updater_set(client)
    canonical.put("api/ubuntu/series", b'{"entries": [{"name": "bionic", "active": true}]}')
    with pytest.raises(FeedError, match=r"entries\[0\]: active series without name and version"):
        await factory.updater_set(client)


# -- records -----------------------------------------------------------------------------------
async def test_bionic_records(
    canonical: CanonicalServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    doc = serve_ubuntu(canonical, shared_data)
    factory = UbuntuFactory()
    factory.configure(ubuntu_config(canonical))
    (updater,) = await factory.updater_set(client)
    assert isinstance(updater, UbuntuUpdater)
    fetched, vulns = await fetch_and_parse(updater, client)
    assert fetched.fingerprint == canonical.etag("oval/com.ubuntu.bionic.cve.oval.xml.bz2")

    got = {(v.name, v.package.name if v.package else "", v.fixed_in_version) for v in vulns}
    assert got == expected_records(doc)
    assert len(vulns) == len(got)
    title = "CVE-2016-8703 on Ubuntu 18.04 LTS (bionic) - medium."
    assert sorted((p, f) for t, p, f in got if t == title) == [
        ("libpotrace0", "1.14-2"),
        ("potrace", "1.14-2"),
    ]
    assert {p for _, p, _ in got} == {"libpotrace0", "potrace", "tor", "tor-geoipdb"}

    tor = next(v for v in vulns if v.package and v.package.name == "tor-geoipdb")
    assert tor.updater == "ubuntu/updater/bionic"
    assert tor.name == "CVE-2016-8860 on Ubuntu 18.04 LTS (bionic) - medium."
    assert tor.description.startswith("Tor before 0.2.8.9 and 0.2.9.x before 0.2.9.4-alpha")
    # Clair leaves the severity text empty and reads the advisory's word.
    assert (tor.severity, tor.normalized_severity) == ("", "Medium")
    assert tor.issued == ZERO_TIME  # Canonical's CVE OVAL has no <issued>
    assert tor.links.split() == [
        "https://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2016-8860",
        "http://people.canonical.com/~ubuntu-security/cve/2016/CVE-2016-8860.html",
        "https://trac.torproject.org/projects/tor/ticket/20384",
        "https://blog.torproject.org/blog/tor-0289-released-important-fixes",
        "https://github.com/torproject/tor/commit/3cea86eb2fbb65949673eb4ba8ebb695c87a57ce",
        "http://www.openwall.com/lists/oss-security/2016/10/18/11",
    ]
    assert tor.package is not None and tor.package.kind == "binary" and not tor.package.arch
    assert all(v.distribution == updater.dist and v.arch_op == "" for v in vulns)


def test_severity_table() -> None:
    for word in ("Negligible", "Low", "Medium", "High", "Critical"):
        assert normalize_severity(word) == word
    for other in ("Untriaged", "medium", "", "Moderate"):
        assert normalize_severity(other) == "Unknown"


SYNTHETIC = """<?xml version="1.0"?>
<oval_definitions xmlns="http://oval.mitre.org/XMLSchema/oval-definitions-5"
    xmlns:ind-def="http://oval.mitre.org/XMLSchema/oval-definitions-5#independent"
    xmlns:linux-def="http://oval.mitre.org/XMLSchema/oval-definitions-5#linux">
<definitions>
  <definition class="vulnerability" id="def:1" version="1">
    <metadata>
      <title>CVE-2099-0001 on Ubuntu 22.04 LTS (jammy) - high.</title>
      <description>one</description>
      <reference source="CVE" ref_id="CVE-2099-0001" ref_url="https://example/CVE-2099-0001"/>
      <advisory><severity>High</severity><issued date="2099-01-02"/>
        <bug>https://bugs.example/1</bug></advisory>
    </metadata>
    <criteria operator="OR">
      <extend_definition definition_ref="def:100" comment="jammy is installed"/>
      <criterion test_ref="tst:unfixed" comment="a is affected and not fixed"/>
      <criterion test_ref="tst:installed" comment="b is installed"/>
      <criterion test_ref="tst:blank" comment="c has a padded version"/>
      <criterion test_ref="tst:prose" comment="d carries prose for a version"/>
      <criterion test_ref="tst:gone" comment="a test the document lacks"/>
      <criterion test_ref="tst:file" comment="a file check"/>
      <criterion test_ref="tst:noevr" comment="a state without an EVR"/>
      <criteria operator="AND">
        <criterion test_ref="tst:arch" comment="f for amd64, nested: walked first"/>
      </criteria>
    </criteria>
  </definition>
  <definition class="inventory" id="def:100" version="1">
    <metadata><title>Check that Ubuntu 22.04 LTS (jammy) is installed.</title></metadata>
    <criteria><criterion test_ref="tst:file" comment="release file"/></criteria>
  </definition>
</definitions>
<tests>
  <linux-def:dpkginfo_test id="tst:unfixed" check="at least one">
    <linux-def:object object_ref="obj:a"/><linux-def:state state_ref="ste:zero"/>
  </linux-def:dpkginfo_test>
  <linux-def:dpkginfo_test id="tst:installed" check="at least one">
    <linux-def:object object_ref="obj:b"/>
  </linux-def:dpkginfo_test>
  <linux-def:dpkginfo_test id="tst:blank" check="at least one">
    <linux-def:object object_ref="obj:c"/><linux-def:state state_ref="ste:blank"/>
  </linux-def:dpkginfo_test>
  <linux-def:dpkginfo_test id="tst:prose" check="at least one">
    <linux-def:object object_ref="obj:d"/><linux-def:state state_ref="ste:prose"/>
  </linux-def:dpkginfo_test>
  <ind-def:textfilecontent54_test id="tst:file" check="at least one">
    <ind-def:object object_ref="obj:file"/>
  </ind-def:textfilecontent54_test>
  <linux-def:dpkginfo_test id="tst:noevr" check="at least one">
    <linux-def:object object_ref="obj:e"/><linux-def:state state_ref="ste:noevr"/>
  </linux-def:dpkginfo_test>
  <linux-def:dpkginfo_test id="tst:arch" check="at least one">
    <linux-def:object object_ref="obj:f"/><linux-def:state state_ref="ste:arch"/>
  </linux-def:dpkginfo_test>
</tests>
<objects>
  <linux-def:dpkginfo_object id="obj:a">
    <linux-def:name var_ref="var:a"/></linux-def:dpkginfo_object>
  <linux-def:dpkginfo_object id="obj:b"><linux-def:name>b</linux-def:name>
    </linux-def:dpkginfo_object>
  <linux-def:dpkginfo_object id="obj:c"><linux-def:name>c</linux-def:name>
    </linux-def:dpkginfo_object>
  <linux-def:dpkginfo_object id="obj:d"><linux-def:name>d</linux-def:name>
    </linux-def:dpkginfo_object>
  <linux-def:dpkginfo_object id="obj:e"><linux-def:name>e</linux-def:name>
    </linux-def:dpkginfo_object>
  <linux-def:dpkginfo_object id="obj:f"><linux-def:name>f</linux-def:name>
    </linux-def:dpkginfo_object>
  <ind-def:textfilecontent54_object id="obj:file">
    <ind-def:filepath>/etc/lsb-release</ind-def:filepath></ind-def:textfilecontent54_object>
</objects>
<states>
  <linux-def:dpkginfo_state id="ste:zero">
    <linux-def:evr datatype="debian_evr_string" operation="less than">0:0</linux-def:evr>
  </linux-def:dpkginfo_state>
  <linux-def:dpkginfo_state id="ste:blank">
    <linux-def:evr datatype="debian_evr_string" operation="less than"> 1:2.3-4ubuntu0.1
    </linux-def:evr>
  </linux-def:dpkginfo_state>
  <linux-def:dpkginfo_state id="ste:prose">
    <linux-def:evr operation="less than">not fixed (needs triage)</linux-def:evr>
  </linux-def:dpkginfo_state>
  <linux-def:dpkginfo_state id="ste:noevr"><linux-def:arch>amd64</linux-def:arch>
  </linux-def:dpkginfo_state>
  <linux-def:dpkginfo_state id="ste:arch">
    <linux-def:arch operation="pattern match">amd64|i386</linux-def:arch>
    <linux-def:evr datatype="debian_evr_string" operation="less than">2.0-1</linux-def:evr>
  </linux-def:dpkginfo_state>
</states>
<variables>
  <constant_variable id="var:a" datatype="string">
    <value>a</value><value>liba1</value></constant_variable>
</variables>
</oval_definitions>
"""


async def test_dpkginfo_rules(canonical: CanonicalServer, client: aiohttp.ClientSession) -> None:
    canonical.put("jammy.xml", SYNTHETIC.encode())
    updater = UbuntuUpdater("jammy", "22.04", canonical.url + "jammy.xml", use_bzip2=False)
    _, vulns = await fetch_and_parse(updater, client)
    got = [
        (v.package.name, v.fixed_in_version, v.package.arch, v.arch_op)
        for v in vulns
        if v.package is not None
    ]
    assert got == [
        ("f", "2.0-1", "amd64|i386", "pattern match"),  # nested criteria come first
        ("a", "0:0", "", ""),  # Ubuntu's "not fixed yet"; the matcher reads it as unfixed
        ("liba1", "0:0", "", ""),
        ("b", "", "", ""),  # no state: installed means affected
        ("c", "1:2.3-4ubuntu0.1", "", ""),  # blanks trimmed
    ]  # prose versions, dangling and non-dpkg tests, and EVR-less states give nothing
    one = vulns[0]
    assert one.name == "CVE-2099-0001 on Ubuntu 22.04 LTS (jammy) - high."
    assert (one.severity, one.normalized_severity) == ("", "High")
    assert one.issued == "2099-01-02T00:00:00Z"
    assert one.links == "https://example/CVE-2099-0001 https://bugs.example/1"
    assert one.distribution == ubuntu_distribution("22.04", "jammy")


# -- through the scheduler ---------------------------------------------------------------------
@pytest.fixture
async def scheduler(
    matcher_pool: asyncpg.Pool, pg_dsn: str, canonical: CanonicalServer
) -> AsyncIterator[UpdateScheduler]:
    async with updater_scheduler(matcher_pool, pg_dsn, "ubuntu", ubuntu_config(canonical)) as made:
        yield made


async def test_runs_unchanged_then_broken_documents_keep_previous_data(
    scheduler: UpdateScheduler,
    matcher_pool: asyncpg.Pool,
    canonical: CanonicalServer,
    shared_data: Path,
) -> None:
    series = [("bionic", "18.04", "Supported"), ("focal", "20.04", "Supported")]
    whole = serve_ubuntu(canonical, shared_data, series)
    first = await scheduler.run_once()
    assert first.outcomes == dict.fromkeys(
        ("ubuntu/updater/bionic", "ubuntu/updater/focal"), "updated"
    )
    count = "SELECT count(*) FROM vuln WHERE updater = 'ubuntu/updater/bionic'"
    stored = await matcher_pool.fetchval(count)
    assert stored == len(expected_records(whole))
    latest = "SELECT uo_id FROM latest_update_operation WHERE updater = 'ubuntu/updater/bionic'"
    ops = "SELECT count(*) FROM update_operation"
    before = await matcher_pool.fetchval(latest)
    path = "oval/com.ubuntu.bionic.cve.oval.xml.bz2"
    fingerprint = await matcher_pool.fetchval(
        "SELECT fingerprint FROM update_operation WHERE id = $1", before
    )
    assert fingerprint == canonical.etag(path)

    second = await scheduler.run_once()
    assert set(second.outcomes.values()) == {"unchanged"}
    assert await matcher_pool.fetchval(ops) == 2

    # Well-compressed but cut-off XML: this updater fails naming the position, focal is fine.
    broken = whole[: len(whole) * 2 // 3]
    canonical.put(path, bz2.compress(broken))
    third = await scheduler.run_once()
    assert third.outcomes == {
        "ubuntu/updater/bionic": "failed",
        "ubuntu/updater/focal": "unchanged",
    }
    url = canonical.url + path
    line = broken.count(b"\n") + 1
    prefix = f"ubuntu/updater/bionic ({url}): malformed XML at line {line}, column"
    assert third.errors["ubuntu/updater/bionic"].startswith(prefix)

    # A cut-off bzip2 stream fails the same way, with the compressed byte count.
    compressed = bz2.compress(whole)
    canonical.put(path, compressed[: len(compressed) // 2])
    fourth = await scheduler.run_once()
    assert fourth.outcomes["ubuntu/updater/bionic"] == "failed"
    assert fourth.errors["ubuntu/updater/bionic"] == (
        f"ubuntu/updater/bionic ({url}): bzip2 stream truncated after {len(compressed) // 2} bytes"
    )
    assert await matcher_pool.fetchval(ops) == 2
    assert await matcher_pool.fetchval(latest) == before
    assert await matcher_pool.fetchval(count) == stored

    # The document that is stored again is still the stored one (same ETag); a new one
    # is fetched and stored.
    canonical.put(path, compressed)
    fifth = await scheduler.run_once()
    assert fifth.outcomes["ubuntu/updater/bionic"] == "unchanged"
    canonical.put(path, bz2.compress(whole + b"\n"))
    sixth = await scheduler.run_once()
    assert sixth.outcomes["ubuntu/updater/bionic"] == "updated"
    assert await matcher_pool.fetchval(count) == stored
    assert await matcher_pool.fetchval(latest) != before


async def test_unchanged_without_new_operation_when_fetched_directly(
    canonical: CanonicalServer, client: aiohttp.ClientSession, shared_data: Path
) -> None:
    serve_ubuntu(canonical, shared_data)
    url = canonical.url + "oval/com.ubuntu.bionic.cve.oval.xml.bz2"
    updater = UbuntuUpdater("bionic", "18.04", url, use_bzip2=True)
    fetched, _ = await fetch_and_parse(updater, client)
    assert await updater.fetch(client, fetched.fingerprint) is Unchanged
