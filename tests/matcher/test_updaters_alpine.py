"""Alpine secdb updaters against the real secdb served by a local feed server."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from clair_matcher.updaters import FeedError, FetchResult, Unchanged
from clair_matcher.updaters._stream_json import iter_array_items
from clair_matcher.updaters.alpine import AlpineFactory, AlpineUpdater, Release
from tests.fixtures.feeds import FeedServer, alpine_secdb, feed_server, fetch_and_parse  # noqa: F401


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _serve_secdb(server: FeedServer, secdb: dict[str, bytes], shared_data: Path) -> None:
    server.put_many(secdb.items())
    edge = shared_data / "feeds/vuls-data-update/pkg/fetch/alpine/secdb/testdata/fixtures/edge"
    server.put("edge/main.json", (edge / "main.json").read_bytes())


def _expected_count(doc: bytes) -> int:
    packages = orjson.loads(doc)["packages"]
    fixes = [ids for p in packages for ids in (p["pkg"].get("secfixes") or {}).values()]
    return sum(len(ids) for ids in fixes if isinstance(ids, list))


async def test_discovery_probes_releases_and_caches_on_unchanged_stamp(
    feed_server: FeedServer,  # noqa: F811
    alpine_secdb: dict[str, bytes],  # noqa: F811
    shared_data: Path,
    client: aiohttp.ClientSession,
) -> None:
    _serve_secdb(feed_server, alpine_secdb, shared_data)
    factory = AlpineFactory()
    factory.configure({"url": feed_server.url.rstrip("/")})  # the slash is added
    names = {u.name for u in await factory.updater_set(client)}
    want = {
        f"alpine-{repo}-v3.{minor}-updater"
        for minor in range(3, 12)
        for repo in ("main", "community")
    } | {"alpine-main-edge-updater"}
    assert names == want
    # v3.12 missing ends the minors; v4.0 missing ends the majors.
    assert feed_server.count("v3.12/", "HEAD") == 1
    assert feed_server.count("v4.0/", "HEAD") == 1
    assert feed_server.count("edge/community.json", "HEAD") == 1

    again = await factory.updater_set(client)
    assert {u.name for u in again} == want
    assert feed_server.count("last-update") == 2
    assert feed_server.count("v3.3/", "HEAD") == 1  # 304 on last-update: no new probing


async def test_v36_main_records(
    feed_server: FeedServer,  # noqa: F811
    alpine_secdb: dict[str, bytes],  # noqa: F811
    client: aiohttp.ClientSession,
) -> None:
    feed_server.put_many(alpine_secdb.items())
    updater = AlpineUpdater(Release(3, 6), "main", feed_server.url + "v3.6/main.json")
    fetched, vulns = await fetch_and_parse(updater, client)
    assert fetched.fingerprint == feed_server.etag("v3.6/main.json")
    assert len(vulns) == _expected_count(alpine_secdb["v3.6/main.json"])
    by_key = {(v.package.name if v.package else "", v.name): v for v in vulns}
    musl = by_key[("musl", "CVE-2017-15650")]
    assert musl.fixed_in_version == "1.1.16-r14"
    assert musl.links == "https://security.alpinelinux.org/vuln/CVE-2017-15650"
    assert musl.updater == "alpine-main-v3.6-updater"
    assert musl.normalized_severity == "Unknown"
    assert musl.package is not None and musl.package.kind == "source"
    assert musl.distribution is not None
    assert musl.distribution.to_json() | {"id": ""} == {
        "id": "",
        "did": "alpine",
        "name": "Alpine Linux",
        "version": "",
        "version_code_name": "",
        "version_id": "3.6",
        "arch": "",
        "cpe": "",
        "pretty_name": "Alpine Linux v3.6",
    }
    assert by_key[("busybox", "CVE-2017-16544")].fixed_in_version == "1.26.2-r9"
    # Ids with trailing text stay whole, as Clair stores them.
    xen = [v for v in vulns if v.package and v.package.name == "xen" and " XSA-" in v.name]
    assert xen, "expected xen entries such as 'CVE-2017-8904 XSA-214'"


async def test_claircore_testdata_keeps_zero_fixed_version(
    feed_server: FeedServer,  # noqa: F811
    shared_data: Path,
    client: aiohttp.ClientSession,
) -> None:
    data = (shared_data / "feeds/claircore/alpine/testdata/v3_15_main_truncated.json").read_bytes()
    feed_server.put("v3.15/main.json", data)
    updater = AlpineUpdater(Release(3, 15), "main", feed_server.url + "v3.15/main.json")
    _, vulns = await fetch_and_parse(updater, client)
    assert len(vulns) == _expected_count(data)
    zero = {v.name for v in vulns if v.fixed_in_version == "0"}
    assert {"CVE-2021-42373", "CVE-2021-42376", "CVE-2021-42377"} <= zero
    assert all(v.distribution and v.distribution.pretty_name == "Alpine Linux v3.15" for v in vulns)


async def test_edge_distribution(
    feed_server: FeedServer,  # noqa: F811
    shared_data: Path,
    client: aiohttp.ClientSession,
) -> None:
    edge = shared_data / "feeds/vuls-data-update/pkg/fetch/alpine/secdb/testdata/fixtures/edge"
    feed_server.put("edge/main.json", (edge / "main.json").read_bytes())
    updater = AlpineUpdater(Release(), "main", feed_server.url + "edge/main.json")
    assert updater.name == "alpine-main-edge-updater"
    _, vulns = await fetch_and_parse(updater, client)
    assert vulns
    dist = vulns[0].distribution
    assert dist is not None
    assert (dist.version_id, dist.pretty_name) == ("edge", "Alpine Linux edge")


async def test_conditional_fetch_by_etag_and_by_last_modified(
    feed_server: FeedServer,  # noqa: F811
    alpine_secdb: dict[str, bytes],  # noqa: F811
    client: aiohttp.ClientSession,
) -> None:
    feed_server.put("v3.9/community.json", alpine_secdb["v3.9/community.json"])
    updater = AlpineUpdater(Release(3, 9), "community", feed_server.url + "v3.9/community.json")
    first = await updater.fetch(client, "")
    assert isinstance(first, FetchResult)
    first.discard()
    assert await updater.fetch(client, first.fingerprint) is Unchanged

    feed_server.send_etag = False
    dated = await updater.fetch(client, "")
    assert isinstance(dated, FetchResult)
    dated.discard()
    assert dated.fingerprint.endswith("GMT")
    assert await updater.fetch(client, dated.fingerprint) is Unchanged
    feed_server.put("v3.9/community.json", alpine_secdb["v3.9/community.json"] + b"\n")
    changed = await updater.fetch(client, dated.fingerprint)
    assert isinstance(changed, FetchResult)
    changed.discard()
    assert feed_server.count("v3.9/community.json") == 5


async def test_truncated_feed_error_names_feed_and_position(
    feed_server: FeedServer,  # noqa: F811
    alpine_secdb: dict[str, bytes],  # noqa: F811
    client: aiohttp.ClientSession,
) -> None:
    doc = alpine_secdb["v3.7/main.json"]
    feed_server.put("v3.7/main.json", doc[: len(doc) * 2 // 3])
    updater = AlpineUpdater(Release(3, 7), "main", feed_server.url + "v3.7/main.json")
    with pytest.raises(FeedError) as caught:
        await fetch_and_parse(updater, client)
    message = str(caught.value)
    assert "alpine-main-v3.7-updater" in message
    assert feed_server.url + "v3.7/main.json" in message
    assert "line" in message and "character offset" in message


def test_stream_reader_handles_chunk_boundaries_and_reports_errors() -> None:
    items = [{"pkg": {"name": f"p{i}", "secfixes": {"1-r0": ["CVE-1"] * 50}}} for i in range(800)]
    doc = orjson.dumps({"packages": items, "numbers": [1, 2.5, 1234567], "z": None})
    assert len(doc) > 3 * (1 << 16)
    got = [item for _, item in iter_array_items(io.BytesIO(doc), "packages", feed="t")]
    assert got == items
    assert list(iter_array_items(io.BytesIO(b'{"a": 1}'), "packages", feed="t")) == []
    for bad, where in (
        (b'{"packages": [1, 2,, 3]}', "line 1 column 20"),
        (b'{"packages": [1] x', ""),
    ):
        with pytest.raises(FeedError, match=r"t: .* at line 1") as caught:
            list(iter_array_items(io.BytesIO(bad), "packages", feed="t"))
        assert where in str(caught.value)
