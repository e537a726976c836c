"""`affected_manifest` bodies are checked against the schema the OpenAPI document declares:
wrong JSON types get Clair's 400 naming the member, never a 500 with the database driver's
message or a 200 echoing the bad value back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.combo import Combo, running_combo

AFFECTED_URL = "/indexer/api/v1/internal/affected_manifest/"


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Combo]:
    async with running_combo(pg_dsn, tmp_path / "cache") as c:
        yield c


def vuln(**members: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "1",
        "name": "CVE-2024-0001",
        "normalized_severity": "High",
        "package": {"name": "openssl", "version": "", "kind": "binary"},
        "distribution": {"did": "debian", "version_id": "12"},
        "fixed_in_version": "3.0.11-1",
    }
    doc.update(members)
    return doc


WRONG_TYPES = [
    pytest.param(vuln(package={"name": ["openssl"]}), "vulnerabilities/0/package/name", id="pkg"),
    pytest.param(vuln(package={"name": "x", "source": 3}), "package/source", id="source"),
    pytest.param(vuln(name=5), "vulnerabilities/0/name", id="name"),
    pytest.param(vuln(fixed_in_version={"a": 1}), "fixed_in_version", id="fixed"),
    pytest.param(vuln(distribution={"version_id": 12}), "distribution/version_id", id="dist"),
    pytest.param(vuln(repository=[]), "vulnerabilities/0/repository", id="repo"),
    pytest.param(vuln(normalized_severity="Dire"), "normalized_severity", id="severity"),
    pytest.param(vuln(range={"[": 1}), "range", id="range"),
    pytest.param(vuln(issued=17), "issued", id="issued"),
]


@pytest.mark.parametrize(("item", "where"), WRONG_TYPES)
async def test_wrong_types_are_400_naming_the_member(
    combo: Combo, item: dict[str, Any], where: str
) -> None:
    resp = await combo.client.post(AFFECTED_URL, json={"vulnerabilities": [item]})
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == "bad-request"
    assert body["message"].startswith("failed to deserialize vulnerability list: ")
    assert where in body["message"]
    assert "asyncpg" not in body["message"] and "invalid input" not in body["message"]


@pytest.mark.parametrize(
    "doc",
    [
        {"vulnerabilities": "x"},
        {"vulnerabilities": [1]},
        {},
        "x",
        3,
        [[]],
        {"vulnerabilities": None},
    ],
)
async def test_wrong_shapes_are_400(combo: Combo, doc: Any) -> None:
    resp = await combo.client.post(AFFECTED_URL, content=orjson.dumps(doc))
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "bad-request"


async def test_valid_bodies_still_answer(combo: Combo) -> None:
    # Missing members are Go's zero values; unknown members are ignored; both spellings work.
    sparse = {"id": "2", "package": {"name": "zlib", "extra": True}, "future_field": [1]}
    docs: list[Any] = [{"vulnerabilities": [vuln(), sparse]}, [vuln()], {"vulnerabilities": []}]
    for doc in docs:
        resp = await combo.client.post(AFFECTED_URL, json=doc)
        assert resp.status_code == 200, resp.text
        assert resp.json()["vulnerable_manifests"] == {}
