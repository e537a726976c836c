"""The Debian tracker updater against real tracker excerpts and real archive Release files.

The mirror is served by the local feed server: the real bookworm Release file from the
archive, minimal Release files for bullseye/buster (the tracker excerpts mostly name those
releases) and a trixie whose Release has no Version (testing, as on the real mirror), under a
`dists/` index page shaped like Debian's. The tracker JSON is the three real excerpts (vunnel,
vuls-data-update, vulnerablecode; disjoint source packages) merged into one document.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from clair_common.distributions import debian_distribution as release_distribution
from clair_common.models import Vulnerability
from clair_indexer.scanners.distributions import debian_from_os_release
from clair_matcher.scheduler import UpdateScheduler
from clair_matcher.updaters import ConfigProblem, FeedError, FetchResult, Unchanged
from clair_matcher.updaters._stream_json import iter_members
from clair_matcher.updaters.debian import (
    DebianFactory,
    DebianUpdater,
    normalize_severity,
    suite_directories,
)
from clair_matcher.updaters.registry import build_factories
from tests.fixtures.feeds import FeedServer, updater_scheduler

TRACKER_EXCERPTS = (
    "feeds/vunnel/tests/unit/providers/debian/test-fixtures/input/debian.json",
    "feeds/vuls-data-update/pkg/fetch/debian/tracker/api/testdata/fixtures/advisory.json",
    "feeds/vulnerablecode/vulnerabilities/tests/test_data/debian.json",
)
JSON_PATH = "tracker/data/json"
MIRROR = "debian/"
SERVED_RELEASES = {"bookworm": 12, "bullseye": 11, "buster": 10}

# Minimal Release heads for releases whose real Release file is not in the shared data.
_SYNTHETIC_RELEASES = {
    "bullseye": "Origin: Debian\nLabel: Debian\nSuite: oldoldstable\nVersion: 11.11\n"
    "Codename: bullseye\nDate: Sat, 31 Aug 2024 10:00:00 UTC\nMD5Sum:\n 0 0 main/x\n",
    "buster": "Origin: Debian\nLabel: Debian\nSuite: oldoldoldstable\nVersion: 10.13\n"
    "Codename: buster\nDate: Sat, 10 Sep 2022 10:00:00 UTC\nMD5Sum:\n 0 0 main/x\n",
    "trixie": "Origin: Debian\nLabel: Debian\nSuite: testing\nCodename: trixie\n"
    "Date: Sat, 11 Jul 2026 10:00:00 UTC\nMD5Sum:\n 0 0 main/x\n",
}
# As Debian's dists/ listing: aliases, pockets and version symlinks next to the codenames.
# stretch/ is listed but has no Release file (404): skipped like a very old suite.
_LISTED = [
    *("Debian10.13/", "Debian11.11/", "Debian12.15/"),
    *("bookworm/", "bookworm-backports/", "bookworm-backports-sloppy/"),
    *("bookworm-proposed-updates/", "bookworm-security/", "bookworm-updates/"),
    *("bullseye/", "buster/", "experimental/", "oldoldstable/", "oldstable/", "rc-buggy/"),
    *("sid/", "stable/", "stretch/", "testing/", "trixie/", "unstable/"),
]


def dists_index_page(names: list[str]) -> bytes:
    rows = "\n".join(
        f'<tr><td><a href="{n}">{n}</a></td><td>2026-07-11 10:16</td><td>-</td></tr>' for n in names
    )
    return (
        "<!DOCTYPE HTML><html><head><title>Index of /debian/dists</title></head><body>"
        "<h1>Index of /debian/dists</h1><table>"
        '<tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th>'
        '</tr><tr><td><a href="/debian/">Parent Directory</a></td></tr>\n'
        f"{rows}</table></body></html>\n"
    ).encode()


def tracker_document(shared_data: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for rel in TRACKER_EXCERPTS:
        doc = json.loads((shared_data / rel).read_bytes())
        assert not set(doc) & set(merged), "excerpts are expected to name different sources"
        merged.update(doc)
    return merged


def serve_debian(server: FeedServer, shared_data: Path) -> dict[str, Any]:
    """Serves the mirror and the tracker JSON; returns the served tracker document."""
    archive = shared_data / "feeds/debian-archive"
    server.put(MIRROR + "dists/", dists_index_page(_LISTED))
    server.put(
        MIRROR + "dists/bookworm/Release",
        (archive / "debian/dists/bookworm/Release").read_bytes(),
    )
    server.put(
        MIRROR + "dists/bookworm-security/Release",
        (archive / "debian-security/dists/bookworm-security/Release").read_bytes(),
    )
    for codename, text in _SYNTHETIC_RELEASES.items():
        server.put(MIRROR + f"dists/{codename}/Release", text.encode())
    doc = tracker_document(shared_data)
    server.put(JSON_PATH, json.dumps(doc, indent=1).encode())
    return doc


def debian_config(server: FeedServer) -> dict[str, Any]:
    return {"mirror_url": server.url + MIRROR.rstrip("/"), "json_url": server.url + JSON_PATH}


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _updater(server: FeedServer, client: aiohttp.ClientSession) -> DebianUpdater:
    factory = DebianFactory()
    factory.configure(debian_config(server))
    (updater,) = await factory.updater_set(client)
    assert isinstance(updater, DebianUpdater)
    return updater


async def _records(updater: DebianUpdater, client: aiohttp.ClientSession) -> list[Vulnerability]:
    fetched = await updater.fetch(client, "")
    assert isinstance(fetched, FetchResult)
    try:
        return list(updater.parse(fetched))
    finally:
        fetched.discard()


async def test_release_discovery_matches_the_distribution_scanner(
    feed_server: FeedServer, shared_data: Path, client: aiohttp.ClientSession
) -> None:
    serve_debian(feed_server, shared_data)
    assert suite_directories(dists_index_page(_LISTED).decode()) == [
        "bookworm",
        "bullseye",
        "buster",
        "stretch",
        "trixie",
    ]
    updater = await _updater(feed_server, client)
    assert updater.name == "debian/updater"
    assert {c: int(d.version_id) for c, d in updater.releases.items()} == SERVED_RELEASES
    # Major from "Version: 12.15" of the real bookworm Release, as the indexer reports it.
    root = shared_data / "layers/debian-12-bookworm-minbase-debootstrap"
    os_release = {
        k: v.strip('"')
        for k, _, v in (
            line.partition("=")
            for line in (root / "usr/lib/os-release").read_text().splitlines()
            if "=" in line
        )
    }
    assert updater.releases["bookworm"] == debian_from_os_release(os_release)
    assert updater.releases["buster"].pretty_name == "Debian GNU/Linux 10 (buster)"
    for skipped in ("sid", "stable", "bookworm-updates", "bookworm-security", "Debian12.15"):
        assert feed_server.count(MIRROR + f"dists/{skipped}/Release") == 0, skipped
    assert feed_server.count(MIRROR + "dists/stretch/Release") == 1  # 404: skipped
    assert feed_server.count(MIRROR + "dists/trixie/Release") == 1  # no Version: skipped


async def test_discovery_failures_are_errors(
    feed_server: FeedServer, client: aiohttp.ClientSession
) -> None:
    factory = DebianFactory()
    factory.configure(debian_config(feed_server))
    with pytest.raises(FeedError, match=r"debian: GET .*dists/: unexpected status 404"):
        await factory.updater_set(client)
    # An index without any release would otherwise wipe every stored Debian record.
    feed_server.put(MIRROR + "dists/", dists_index_page(["sid/", "stable/"]))
    with pytest.raises(FeedError, match="no releases found"):
        await factory.updater_set(client)


def test_configuration_keys() -> None:
    for legacy in ("archive_url", "oval_url", "url", "dists_url"):
        factories, problems = build_factories(["debian"], {"debian": {legacy: "http://x/"}})
        assert not factories and legacy in problems["debian"]
    factory = DebianFactory()
    factory.configure({})
    assert (factory.mirror, factory.json_url) == (
        "https://deb.debian.org/",
        "https://security-tracker.debian.org/tracker/data/json",
    )
    factory.configure({"mirror_url": "http://m/debian", "json_url": "http://j/json"})
    assert (factory.mirror, factory.json_url) == ("http://m/debian/", "http://j/json")
    updater = DebianUpdater("http://j/json", {})
    with pytest.raises(ConfigProblem, match="dists_url"):
        updater.configure({"dists_url": "http://x/"})
    updater.configure({"json_url": "http://other/json"})
    assert updater.url == "http://other/json"


def test_severity_table_is_shifted_like_clairs() -> None:
    table = {"unimportant": "Low", "low": "Medium", "medium": "High", "high": "Critical"}
    for urgency, want in table.items():
        assert normalize_severity(urgency) == want
        assert normalize_severity(urgency.upper()) == want
    for other in ("not yet assigned", "end-of-life", "high**", "low**", ""):
        assert normalize_severity(other) == "Unknown"


async def test_records_from_the_real_excerpts(
    feed_server: FeedServer, shared_data: Path, client: aiohttp.ClientSession
) -> None:
    doc = serve_debian(feed_server, shared_data)
    records = await _records(await _updater(feed_server, client), client)

    want = [
        (src, cve, rel)
        for src, cves in doc.items()
        for cve, data in cves.items()
        for rel in (data.get("releases") or {})
        if rel in SERVED_RELEASES
    ]
    got = [
        (v.package.name, v.name, v.distribution.version_code_name)
        for v in records
        if v.package and v.distribution
    ]
    assert sorted(got) == sorted(want) and len(got) == len(records)
    by_key = dict(zip(got, records, strict=True))

    def record(src: str, cve: str, rel: str) -> tuple[str, str, str, str]:
        v = by_key[(src, cve, rel)]
        return v.fixed_in_version, v.severity, v.normalized_severity, v.links

    link = "https://security-tracker.debian.org/tracker/"
    # Fixed versions and the shifted severities.
    assert record("mimetex", "CVE-2009-1382", "buster") == (
        "1.50-1.1",
        "medium",
        "High",
        link + "CVE-2009-1382",
    )
    assert record("backupninja", "CVE-2005-3111", "buster")[:3] == ("0.8-2", "medium", "High")
    # Unfixed (no fixed_version) stays "", "low" becomes Medium.
    assert record("librsync", "CVE-2014-8242", "buster")[:3] == ("", "low", "Medium")
    assert record("389-ds-base", "CVE-2016-5416", "bullseye")[:3] == (
        "",
        "not yet assigned",
        "Unknown",
    )
    # "0" (not affected) is kept verbatim; "unimportant" is Low.
    assert record("prototypejs", "CVE-2007-2383", "buster")[:3] == ("0", "unimportant", "Low")
    assert record("389-ds-base", "CVE-2012-0833", "bullseye")[:3] == ("0", "unimportant", "Low")
    # Urgencies with the tracker's "**" mark are not in Clair's table.
    assert record("prototypejs", "CVE-2008-7220", "buster")[1:3] == ("high**", "Unknown")
    assert record("atomicparsley", "CVE-2021-37231", "bookworm")[0] == "20210715.151551.e7ad03a-1"
    assert record("sope", "CVE-2025-53603", "bookworm")[0] == "5.8.0-1+deb12u1"
    # sid, trixie (no Version), stretch (no Release file), jessie (not listed) are dropped.
    assert not any(key[2] not in SERVED_RELEASES for key in got)
    assert ("sope", "CVE-2025-53603", "bullseye") in by_key
    assert not any(src == "chromium-browser" for src, _, _ in got)  # "releases": []

    mimetex = by_key[("mimetex", "CVE-2009-1382", "buster")]
    assert mimetex.description.startswith("Multiple stack-based buffer overflows")
    assert mimetex.updater == "debian/updater"
    assert mimetex.package is not None and mimetex.package.kind == "source"
    assert mimetex.distribution == release_distribution("buster", 10)


async def test_fetch_is_conditional_on_last_modified(
    feed_server: FeedServer, shared_data: Path, client: aiohttp.ClientSession
) -> None:
    serve_debian(feed_server, shared_data)
    updater = await _updater(feed_server, client)
    first = await updater.fetch(client, "")
    assert isinstance(first, FetchResult)
    first.discard()
    assert first.fingerprint.endswith(" GMT")  # Last-Modified, not the ETag the server has
    assert await updater.fetch(client, first.fingerprint) is Unchanged
    feed_server.put(JSON_PATH, feed_server.files[JSON_PATH] + b"\n")
    changed = await updater.fetch(client, first.fingerprint)
    assert isinstance(changed, FetchResult)
    changed.discard()
    assert changed.fingerprint != first.fingerprint
    assert feed_server.count(JSON_PATH) == 3


def test_stream_errors_name_the_position() -> None:
    members = list(iter_members(io.BytesIO(b'{"a": {"x": 1}, "b": {}}'), feed="t"))
    assert members == [("a", {"x": 1}), ("b", {})]
    assert list(iter_members(io.BytesIO(b" {} "), feed="t")) == []
    with pytest.raises(FeedError, match=r"^t: .* at line 2 column \d+ \(character offset \d+\)"):
        list(iter_members(io.BytesIO(b'{"a": {"x": 1},\n "b": {"y": '), feed="t"))
    with pytest.raises(FeedError, match="trailing data"):
        list(iter_members(io.BytesIO(b'{"a": 1} {"b": 2}'), feed="t"))


def test_malformed_records_name_the_entry(tmp_path: Path) -> None:
    updater = DebianUpdater("http://j/json", {"bookworm": release_distribution("bookworm", 12)})
    path = tmp_path / "json"
    path.write_text('{"curl": {"CVE-1": {"releases": {"bookworm": "resolved"}}}}')
    with pytest.raises(FeedError, match=r"debian/updater .*\['curl'\]\['CVE-1'\]\.releases"):
        list(updater.parse(FetchResult(path=path, fingerprint="", url="http://j/json")))


@pytest.fixture
async def scheduler(
    matcher_pool: asyncpg.Pool, pg_dsn: str, feed_server: FeedServer
) -> AsyncIterator[UpdateScheduler]:
    async with updater_scheduler(
        matcher_pool, pg_dsn, "debian", debian_config(feed_server)
    ) as made:
        yield made


async def test_runs_unchanged_then_truncated_keep_previous_data(
    scheduler: UpdateScheduler,
    matcher_pool: asyncpg.Pool,
    feed_server: FeedServer,
    shared_data: Path,
) -> None:
    doc = serve_debian(feed_server, shared_data)
    first = await scheduler.run_once()
    assert first.outcomes == {"debian/updater": "updated"}, first.errors
    count = "SELECT count(*) FROM vuln WHERE updater = 'debian/updater'"
    stored = await matcher_pool.fetchval(count)
    assert stored == sum(
        rel in SERVED_RELEASES
        for cves in doc.values()
        for data in cves.values()
        for rel in (data.get("releases") or {})
    )
    latest = "SELECT uo_id FROM latest_update_operation WHERE updater = 'debian/updater'"
    before = await matcher_pool.fetchval(latest)

    second = await scheduler.run_once()
    assert second.outcomes == {"debian/updater": "unchanged"}
    ops = "SELECT count(*) FROM update_operation WHERE updater = 'debian/updater'"
    assert await matcher_pool.fetchval(ops) == 1

    whole = feed_server.files[JSON_PATH]
    feed_server.put(JSON_PATH, whole[: len(whole) * 2 // 3])
    third = await scheduler.run_once()
    assert third.outcomes == {"debian/updater": "failed"}
    message = third.errors["debian/updater"]
    assert message.startswith("debian/updater (" + feed_server.url + JSON_PATH + "): ")
    assert "line " in message and "character offset" in message
    assert await matcher_pool.fetchval(ops) == 1
    assert await matcher_pool.fetchval(latest) == before
    assert await matcher_pool.fetchval(count) == stored
