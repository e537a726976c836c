"""The indexer's fetch policy (`indexer.layer_fetch_allow`, `indexer.layer_fetch_deny_internal`):
by default anything is fetched, as in Clair; with a policy, refused hosts are never contacted,
redirects cannot lead around it, and errors do not echo what the remote side answered."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.fixtures.combo import Combo, running_combo
from tests.fixtures.faulty import FaultyOrigin
from tests.fixtures.images import build_layer, sha256_digest

INDEX_URL = "/indexer/api/v1/index_report"
ComboWith = Callable[..., AbstractAsyncContextManager[Combo]]


@pytest.fixture
def combo_with(pg_dsn: str, tmp_path: Path) -> ComboWith:
    def make(**indexer: Any) -> AbstractAsyncContextManager[Combo]:
        return running_combo(pg_dsn, tmp_path / "cache", extra_config={"indexer": indexer})

    return make


def manifest(n: int, blob: bytes, uri: str) -> dict[str, Any]:
    return {
        "hash": "sha256:" + f"{n:02x}" * 32,
        "layers": [{"hash": sha256_digest(blob), "uri": uri}],
    }


BLOB = build_layer({"etc/hostname": b"policy\n"})


async def refused(combo: Combo, doc: dict[str, Any]) -> str:
    resp = await combo.client.post(INDEX_URL, json=doc)
    assert resp.status_code == 400, resp.text
    message: str = resp.json()["message"]
    assert "refused by the fetch policy" in message
    return message


async def test_default_fetches_anything(combo_with: ComboWith, faulty_origin: FaultyOrigin) -> None:
    async with combo_with() as combo:
        doc = manifest(1, BLOB, faulty_origin.serve("/blob", BLOB))
        resp = await combo.client.post(INDEX_URL, json=doc)
        assert resp.status_code == 201, resp.text


async def test_deny_internal(combo_with: ComboWith, faulty_origin: FaultyOrigin) -> None:
    async with combo_with(layer_fetch_deny_internal=True) as combo:
        loopback = faulty_origin.serve("/blob", BLOB)
        assert "internal address" in await refused(combo, manifest(2, BLOB, loopback))
        metadata = "http://169.254.169.254/latest/meta-data/"
        assert "internal address" in await refused(combo, manifest(3, BLOB, metadata))
        mapped = loopback.replace("127.0.0.1", "[::ffff:127.0.0.1]")
        await refused(combo, manifest(4, BLOB, mapped))
        assert faulty_origin.requests["/blob"] == 0  # never contacted


async def test_allow_list_applies_to_redirects(
    combo_with: ComboWith, faulty_origin: FaultyOrigin
) -> None:
    async with combo_with(layer_fetch_allow=["localhost"]) as combo:
        named = faulty_origin.url.replace("127.0.0.1", "localhost")
        target = faulty_origin.serve("/blob", BLOB)  # http://127.0.0.1:...: not named

        async def redirect(_: web.Request) -> web.StreamResponse:
            return web.Response(status=302, headers={"Location": target})

        faulty_origin.behaviours["/hop"] = redirect
        message = await refused(combo, manifest(5, BLOB, named + "/hop"))
        assert "'127.0.0.1'" in message and "layer_fetch_allow" in message
        assert faulty_origin.requests["/hop"] == 1 and faulty_origin.requests["/blob"] == 0
        # The allowed host is fetched from.
        resp = await combo.client.post(INDEX_URL, json=manifest(6, BLOB, named + "/blob"))
        assert resp.status_code == 201, resp.text


async def test_allow_list_by_network(combo_with: ComboWith, faulty_origin: FaultyOrigin) -> None:
    async with combo_with(layer_fetch_allow=["10.0.0.0/8"]) as combo:
        await refused(combo, manifest(7, BLOB, faulty_origin.serve("/blob", BLOB)))
    async with combo_with(layer_fetch_allow=["127.0.0.0/8"]) as combo:
        resp = await combo.client.post(
            INDEX_URL, json=manifest(8, BLOB, faulty_origin.url + "/blob")
        )
        assert resp.status_code == 201, resp.text


async def test_errors_do_not_echo_remote_answers(
    combo_with: ComboWith, faulty_origin: FaultyOrigin
) -> None:
    other = build_layer({"etc/hostname": b"something else\n"})
    cases = {
        "/missing": faulty_origin.status("/missing", 404),
        "/wrong": faulty_origin.serve("/wrong", other),  # a digest mismatch
        "/html": faulty_origin.serve("/html", b"<html>secret</html>", "text/html"),
    }
    async with combo_with(layer_fetch_allow=["127.0.0.1"]) as combo:
        for n, uri in enumerate(cases.values(), start=10):
            resp = await combo.client.post(INDEX_URL, json=manifest(n, BLOB, uri))
            assert resp.status_code == 400, resp.text
            message = resp.json()["message"]
            assert message.endswith("could not fetch it from '127.0.0.1'"), message
            for leak in ("404", sha256_digest(other), "text/html", "status"):
                assert leak not in message
