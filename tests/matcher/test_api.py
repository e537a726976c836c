"""The matcher's HTTP routes (clair-api.md 1.4) end to end, in combo mode on a real database.

Vulnerabilities come from the Alpine secdb served by the local feed server through the real
updaters; images are pushed to the local registry and indexed through the indexer's route. The
served `v3.6/main.json` is edited between updater runs (one advisory dropped, one added) so that
update operations, diffs and report validators have something real to follow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from clair_common.models import Manifest
from clair_indexer.scanners import default_scanners
from clair_indexer.scanners.apk import ApkScanner
from tests.fixtures.combo import Combo, running_combo, vulnerabilities_by_package
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry

API = "/matcher/api/v1"
REPORT_TYPE = "application/vnd.clair.vulnerability_report.v1+json"
V36 = "alpine-main-v3.6-updater"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
DROPPED = ("busybox", "CVE-2017-16544", "1.26.2-r9")  # busybox 1.26.2-r4 in the image
ADDED = ("zlib", "CVE-2099-0001", "1.2.11-r1")  # zlib 1.2.11-r0 in the image


def edited_v36(original: bytes) -> bytes:
    """v3.6/main.json without DROPPED and with ADDED."""
    doc = orjson.loads(original)
    for entry in doc["packages"]:
        if entry["pkg"]["name"] == DROPPED[0]:
            entry["pkg"]["secfixes"][DROPPED[2]].remove(DROPPED[1])
    assert ADDED[0] not in {entry["pkg"]["name"] for entry in doc["packages"]}
    doc["packages"].append({"pkg": {"name": ADDED[0], "secfixes": {ADDED[2]: [ADDED[1]]}}})
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def triples(vulns: list[dict[str, Any]] | None) -> set[tuple[str, str, str]]:
    return {(v["package"]["name"], v["name"], v["fixed_in_version"]) for v in vulns or []}


def feed_triples(document: bytes) -> set[tuple[str, str, str]]:
    """Every (source package, advisory, fixed version) of a secdb document: the oracle."""
    out: set[tuple[str, str, str]] = set()
    for entry in orjson.loads(document)["packages"]:
        for fixed, ids in (entry["pkg"].get("secfixes") or {}).items():
            out.update((entry["pkg"]["name"], i, fixed) for i in ids or [] if isinstance(i, str))
    return out


@dataclass
class Setup:
    combo: Combo
    feeds: FeedServer
    secdb: dict[str, bytes]
    alpine: Manifest

    @property
    def client(self) -> httpx.AsyncClient:
        return self.combo.client

    async def run_updaters(self) -> None:
        report = await self.combo.run_updaters()
        assert not report.errors, report.errors

    async def operations(self, **params: str) -> dict[str, list[dict[str, Any]]]:
        resp = await self.client.get(f"{API}/internal/update_operation", params=params)
        assert resp.status_code == 200, resp.text
        doc: dict[str, list[dict[str, Any]]] = resp.json()
        return doc

    async def diff(self, **params: str) -> httpx.Response:
        return await self.client.get(f"{API}/internal/update_diff", params=params)


def alpine_layer(shared_data: Path) -> bytes:
    (root,) = (shared_data / "layers").glob("alpine-3.6*")
    return build_layer(files_from_dir(root))


@pytest.fixture
async def setup(
    pg_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    alpine_secdb: dict[str, bytes],
) -> AsyncIterator[Setup]:
    updaters = {"sets": ["alpine"], "config": {"alpine": {"url": feed_server.url}}}
    async with running_combo(
        pg_dsn,
        tmp_path / "cache",
        updaters=updaters,
        extra_config={"matcher": {"cache_age": "90m"}},
    ) as combo:
        alpine = await registry.push_image("api-alpine36", [alpine_layer(shared_data)])
        yield Setup(combo, feed_server, alpine_secdb, alpine)


def report_url(digest: str) -> str:
    return f"{API}/vulnerability_report/{digest}"


async def newest_ref(dsn: str, kind: str = "vulnerability") -> str:
    """Independently of the API: the ref of the newest operation of that kind."""
    conn = await asyncpg.connect(dsn)
    try:
        ref = await conn.fetchval(
            "SELECT ref FROM matcher.update_operation WHERE kind = $1 ORDER BY id DESC LIMIT 1",
            kind,
        )
    finally:
        await conn.close()
    return str(ref)


async def test_vulnerability_report_statuses_headers_and_etag(
    setup: Setup, registry: LocalRegistry
) -> None:
    client = setup.client
    for bad in ("sha256:abc", "latest", "md5:" + "a" * 32):
        resp = await client.get(report_url(bad))
        assert resp.status_code == 400 and resp.json()["code"] == "bad-request", bad

    # Nothing has been ingested: 202 with an empty body, indexed or not.
    await setup.combo.index(setup.alpine)
    unknown = "sha256:" + "e" * 64
    for digest in (setup.alpine.hash, unknown):
        resp = await client.get(report_url(digest))
        assert resp.status_code == 202 and resp.content == b"", resp.text

    garbage = await registry.push_image("api-garbage", [b"not a tar archive, honestly" * 50])
    posted = await client.post("/indexer/api/v1/index_report", json=garbage.to_json())
    assert posted.status_code == 400
    stored = await client.get(f"/indexer/api/v1/index_report/{garbage.hash}")
    assert stored.json()["state"] == "IndexError"

    setup.feeds.put_many(setup.secdb.items())
    await setup.run_updaters()
    for digest in (unknown, garbage.hash):
        resp = await client.get(report_url(digest))
        assert resp.status_code == 404
        assert resp.json() == {
            "code": "not-found",
            "message": f'index report for manifest "{digest}" not found',
        }

    first = await client.get(report_url(setup.alpine.hash))
    assert first.status_code == 200
    assert first.headers["content-type"] == REPORT_TYPE
    assert first.headers["cache-control"] == "max-age=5400"  # matcher.cache_age: 90m
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
    report = first.json()
    assert report["manifest_hash"] == setup.alpine.hash
    found = vulnerabilities_by_package(report)
    assert DROPPED[1] in found[("busybox", "1.26.2-r4")]
    assert ADDED[1] not in found.get(("zlib", "1.2.11-r0"), set())

    as_json = await client.get(
        report_url(setup.alpine.hash), headers={"Accept": "application/json"}
    )
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers["etag"] == etag and as_json.json() == report
    vendor = await client.get(
        report_url(setup.alpine.hash), headers={"Accept": f"text/html, {REPORT_TYPE}"}
    )
    assert vendor.headers["content-type"] == REPORT_TYPE
    # Clair never refused a report for its Accept header; neither do we.
    other = await client.get(report_url(setup.alpine.hash), headers={"Accept": "text/html"})
    assert other.status_code == 200 and other.headers["content-type"] == REPORT_TYPE

    cached = await client.get(report_url(setup.alpine.hash), headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == etag
    assert cached.headers["cache-control"] == "max-age=5400"
    # Weak comparison: a proxy that weakened the tag, or a list of tags, still validates.
    for header in (f"W/{etag}", f'"other", {etag}'):
        weak = await client.get(report_url(setup.alpine.hash), headers={"If-None-Match": header})
        assert weak.status_code == 304, header
    stale = await client.get(
        report_url(setup.alpine.hash), headers={"If-None-Match": '"something-else"'}
    )
    assert stale.status_code == 200 and stale.headers["etag"] == etag

    # An unchanged feed creates no operation, so the validator holds.
    await setup.run_updaters()
    again = await client.get(report_url(setup.alpine.hash), headers={"If-None-Match": etag})
    assert again.status_code == 304

    # A new operation of the v3.6 updater changes the report and its validator.
    setup.feeds.put("v3.6/main.json", edited_v36(setup.secdb["v3.6/main.json"]))
    await setup.run_updaters()
    changed = await client.get(report_url(setup.alpine.hash), headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    found = vulnerabilities_by_package(changed.json())
    assert DROPPED[1] not in found[("busybox", "1.26.2-r4")]
    assert ADDED[1] in found[("zlib", "1.2.11-r0")]

    # Deleting that operation brings back the previous data, report and validator.
    latest = await setup.operations(latest="true")
    deleted = await client.delete(f"{API}/internal/update_operation/{latest[V36][0]['ref']}")
    assert deleted.status_code == 200
    restored = await client.get(report_url(setup.alpine.hash))
    assert restored.headers["etag"] == etag and restored.json() == report


async def test_report_etag_changes_with_the_scanner_state(
    pg_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    alpine_secdb: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    updaters = {"sets": ["alpine"], "config": {"alpine": {"url": feed_server.url}}}
    feed_server.put_many(alpine_secdb.items())
    manifest = await registry.push_image("api-alpine36-state", [alpine_layer(shared_data)])
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as combo:
        indexed = await combo.client.post("/indexer/api/v1/index_report", json=manifest.to_json())
        assert (await combo.run_updaters()).errors == {}
        before = await combo.client.get(report_url(manifest.hash))
        assert before.status_code == 200

    # A new apk scanner version (as after an upgrade) is a new indexer state; re-indexing
    # rescans the manifest under it.
    class NextApkScanner(ApkScanner):
        version = "2"

    def upgraded(*args: Any, **kwargs: Any) -> list[Any]:
        return [
            NextApkScanner() if type(s) is ApkScanner else s
            for s in default_scanners(*args, **kwargs)
        ]

    monkeypatch.setattr("clair_indexer.entry.default_scanners", upgraded)
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as combo:
        reindexed = await combo.client.post("/indexer/api/v1/index_report", json=manifest.to_json())
        assert reindexed.status_code == 201
        assert reindexed.headers["etag"] != indexed.headers["etag"]
        after = await combo.client.get(
            report_url(manifest.hash), headers={"If-None-Match": before.headers["etag"]}
        )
        assert after.status_code == 200
        assert after.headers["etag"] != before.headers["etag"]
        assert vulnerabilities_by_package(after.json()) == vulnerabilities_by_package(before.json())


async def test_update_operations_listing_etag_and_delete(setup: Setup) -> None:
    client = setup.client
    empty = await client.get(f"{API}/internal/update_operation")
    assert empty.status_code == 200 and empty.json() == {} and "etag" not in empty.headers

    setup.feeds.put_many(setup.secdb.items())
    await setup.run_updaters()
    setup.feeds.put("v3.6/main.json", edited_v36(setup.secdb["v3.6/main.json"]))
    await setup.run_updaters()

    listing = await client.get(f"{API}/internal/update_operation")
    ops = listing.json()
    served = [Path(p) for p in setup.secdb if p.endswith(".json")]
    assert set(ops) == {f"alpine-{p.stem}-{p.parent}-updater" for p in served}
    for name, items in ops.items():
        assert len(items) == (2 if name == V36 else 1), name
        for op in items:
            assert set(op) == {"ref", "updater", "fingerprint", "date", "kind"}
            assert op["updater"] == name and op["kind"] == "" and op["fingerprint"]
    newer, older = ops[V36]
    assert newer["date"] >= older["date"] and newer["fingerprint"] != older["fingerprint"]
    assert (
        listing.headers["etag"] == f'"{newer["ref"]}"' == f'"{await newest_ref(setup.combo.dsn)}"'
    )

    for params in ({"kind": "vulnerability"}, {"kind": ""}, {"latest": "false"}, {}):
        resp = await client.get(f"{API}/internal/update_operation", params=params)
        assert resp.json() == ops, params
    for flag in ("true", "1", "t", "True"):
        latest = await setup.operations(latest=flag)
        assert latest == {name: items[:1] for name, items in ops.items()}, flag

    not_modified = await client.get(
        f"{API}/internal/update_operation",
        params={"latest": "true"},
        headers={"If-None-Match": listing.headers["etag"]},
    )
    assert not_modified.status_code == 304 and not_modified.content == b""

    enrichment = await client.get(f"{API}/internal/update_operation", params={"kind": "enrichment"})
    assert enrichment.status_code == 200 and enrichment.json() == {}
    assert "etag" not in enrichment.headers
    bad = await client.get(f"{API}/internal/update_operation", params={"kind": "vulnerabilities"})
    assert bad.status_code == 400 and bad.json()["code"] == "bad-request"
    assert "unknown kind" in bad.json()["message"]

    for ref in ("not-a-uuid", "1234"):
        resp = await client.delete(f"{API}/internal/update_operation/{ref}")
        assert resp.status_code == 400 and resp.json()["code"] == "bad-request"
    gone = await client.delete(f"{API}/internal/update_operation/{newer['ref']}")
    assert gone.status_code == 200 and gone.content == b""
    assert (await setup.operations())[V36] == [older]
    assert (await setup.operations(latest="true"))[V36] == [older]
    after = await client.get(
        f"{API}/internal/update_operation", headers={"If-None-Match": listing.headers["etag"]}
    )
    assert after.status_code == 200
    assert after.headers["etag"] == f'"{await newest_ref(setup.combo.dsn)}"'
    assert after.headers["etag"] != listing.headers["etag"]
    # Deleting an unknown (or already deleted) operation is not an error, as in Clair.
    again = await client.delete(f"{API}/internal/update_operation/{newer['ref']}")
    assert again.status_code == 200


async def test_update_diff(setup: Setup) -> None:
    setup.feeds.put_many(setup.secdb.items())
    await setup.run_updaters()
    setup.feeds.put("v3.6/main.json", edited_v36(setup.secdb["v3.6/main.json"]))
    await setup.run_updaters()
    cur, prev = (await setup.operations())[V36]

    resp = await setup.diff(prev=prev["ref"], cur=cur["ref"])
    assert resp.status_code == 200, resp.text
    diff = resp.json()
    assert diff["prev"] == prev and diff["cur"] == cur
    assert triples(diff["added"]) == {ADDED} and len(diff["added"]) == 1
    assert triples(diff["removed"]) == {DROPPED} and len(diff["removed"]) == 1
    added = diff["added"][0]
    assert added["updater"] == V36 and added["distribution"]["did"] == "alpine"
    assert added["distribution"]["version_id"] == "3.6"

    backwards = (await setup.diff(prev=cur["ref"], cur=prev["ref"])).json()
    assert triples(backwards["added"]) == {DROPPED} and triples(backwards["removed"]) == {ADDED}

    # No prev: from the beginning of time, so everything the operation holds is added.
    for params in ({"cur": prev["ref"]}, {"cur": prev["ref"], "prev": ""}):
        whole = (await setup.diff(**params)).json()
        assert whole["prev"] == {
            "ref": ZERO_UUID,
            "updater": "",
            "fingerprint": "",
            "date": "0001-01-01T00:00:00Z",
            "kind": "",
        }
        assert whole["removed"] is None
        assert triples(whole["added"]) == feed_triples(setup.secdb["v3.6/main.json"])
        assert len(whole["added"]) == len(triples(whole["added"]))
    whole_cur = (await setup.diff(cur=cur["ref"])).json()
    assert triples(whole_cur["added"]) == feed_triples(edited_v36(setup.secdb["v3.6/main.json"]))

    same = (await setup.diff(prev=cur["ref"], cur=cur["ref"])).json()
    assert same["added"] is None and same["removed"] is None

    for params in ({}, {"cur": ""}, {"cur": "nope"}, {"cur": cur["ref"], "prev": "nope"}):
        resp = await setup.diff(**params)
        assert resp.status_code == 400 and resp.json()["code"] == "bad-request", params
    unknown = await setup.diff(cur="0b1e9a5e-8f43-4d1b-9c1e-2f4d9b8a7c61")
    # Clair answers 500; an unknown ref is the client's to fix (schemathesis: no 5xx).
    assert unknown.status_code == 404 and unknown.json()["code"] == "not-found"
