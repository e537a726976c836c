"""CR/LF and other controls in layer header names or values or in the uri are refused as a bogus
manifest (400), never sent on and never a 500. Redirect loops and layer hosts that refuse,
stall or never answer are 400 with a stored `IndexError`: tests/indexer/test_hostile_corpus.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.combo import Combo, running_combo
from tests.fixtures.faulty import FaultyOrigin
from tests.fixtures.images import build_layer, sha256_digest

INDEX_URL = "/indexer/api/v1/index_report"


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Combo]:
    async with running_combo(pg_dsn, tmp_path / "cache") as c:
        yield c


def manifest(n: int, uri: str, headers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    blob_digest = sha256_digest(build_layer({f"etc/file{n}": b"x"}))
    return {
        "hash": "sha256:" + f"{n:02x}" * 32,
        "layers": [{"hash": blob_digest, "uri": uri, "headers": headers or {}}],
    }


@pytest.mark.parametrize(
    ("uri_suffix", "headers", "reason"),
    [
        ("", {"X-Evil\r\nInjected": ["1"]}, "invalid header name"),
        ("", {"Authorization": ["Bearer x\r\nX-Injected: 1"]}, "control character"),
        ("", {"X-Nul": ["a\x00b"]}, "control character"),
        ("", {"": ["empty name"]}, "invalid header name"),
        ("\r\nX-Injected: 1", {}, "layers[0].uri"),
        (" spaced", {}, "layers[0].uri"),
    ],
)
async def test_header_and_uri_injection_is_a_bogus_manifest(
    combo: Combo,
    faulty_origin: FaultyOrigin,
    uri_suffix: str,
    headers: dict[str, list[str]],
    reason: str,
) -> None:
    uri = faulty_origin.serve("/blob", b"never fetched") + uri_suffix
    resp = await combo.client.post(INDEX_URL, json=manifest(3, uri, headers))
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == "bad-request"
    assert body["message"].startswith("bogus manifest: ")
    assert reason in body["message"]
    assert faulty_origin.requests["/blob"] == 0
