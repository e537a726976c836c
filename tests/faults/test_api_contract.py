"""What schemathesis (`make fuzz`) found, kept as plain tests: 405 names the allowed methods,
`latest=` refuses non-booleans, parameters are declared with the patterns the routes enforce,
and `affected_manifest` refuses dates its answer could not carry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.combo import Combo, running_combo


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Combo]:
    async with running_combo(pg_dsn, tmp_path / "cache") as c:
        yield c


async def test_contract(combo: Combo) -> None:
    resp = await combo.client.request("TRACE", "/indexer/api/v1/index_report")
    assert resp.status_code == 405
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"POST", "DELETE"}

    ops = "/matcher/api/v1/internal/update_operation"
    assert (await combo.client.get(ops, params={"latest": "true"})).status_code == 200
    bad = await combo.client.get(ops, params={"latest": "null"})
    assert bad.status_code == 400 and bad.json()["code"] == "bad-request"

    doc = (await combo.client.get("/openapi/v1")).json()
    report = doc["paths"]["/indexer/api/v1/index_report/{digest}"]["get"]["parameters"][0]
    assert report["schema"] == {"$ref": "#/components/schemas/Digest"}
    diff = doc["paths"]["/matcher/api/v1/internal/update_diff"]["get"]["parameters"]
    assert {p["name"]: p["schema"].get("format") for p in diff} == {"cur": "uuid", "prev": "uuid"}

    affected = "/indexer/api/v1/internal/affected_manifest/"
    for issued in ("0000-00-00T00:00:00Z", "yesterday"):
        resp = await combo.client.post(affected, json=[{"id": "1", "issued": issued}])
        assert resp.status_code == 400, resp.text
    resp = await combo.client.post(affected, json=[{"id": "1", "package": {"cpe": "junk"}}])
    assert resp.status_code == 400, resp.text
    ok = await combo.client.post(affected, json=[{"id": "1", "issued": "2024-01-02T03:04:05Z"}])
    assert ok.status_code == 200, ok.text
