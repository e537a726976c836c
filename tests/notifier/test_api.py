"""The notifier's store and routes on a real PostgreSQL: pages, deletes, receipts, GC."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from clair_common.db.migrate import migrate
from clair_common.db.pool import create_pool
from clair_common.http.app import build_api_app
from clair_common.models import Notification, Package, VulnerabilitySummary
from clair_notifier.app import PAGE_TYPE, build_operations
from clair_notifier.service import NotifierService
from clair_notifier.store import Body, NotifierStore

MANIFEST = "sha256:" + "ab" * 32
NIL = "00000000-0000-0000-0000-000000000000"


@dataclass
class Notifier:
    store: NotifierStore
    client: httpx.AsyncClient
    pool: asyncpg.Pool


@pytest.fixture
async def notifier(pg_dsn: str) -> AsyncIterator[Notifier]:
    await migrate(pg_dsn, "notifier", "clair_notifier")
    pool = await create_pool(pg_dsn, schema="notifier", application_name="notifier-test")
    store = NotifierStore(pool)
    app = build_api_app(build_operations(NotifierService(store)))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://clair") as client:
            yield Notifier(store, client, pool)
    finally:
        await pool.close()


def bodies(count: int, reason: str = "added") -> list[Body]:
    out = []
    for i in range(count):
        summary = VulnerabilitySummary(
            name=f"CVE-2026-{i:04}",
            description="a flaw",
            package=Package(name="pkg", version="1.0"),
            normalized_severity="High",
            fixed_in_version="1.1",
            links="https://example.com",
        )
        n = Notification(str(uuid.uuid4()), MANIFEST, reason, summary)
        doc = n.to_json()
        del doc["id"]
        out.append(Body(uuid.UUID(n.id), doc))
    return out


async def put_set(
    store: NotifierStore, count: int, updater: str = "osv/pypi", status: str = "created"
) -> tuple[uuid.UUID, list[Body]]:
    set_id, ref, items = uuid.uuid4(), str(uuid.uuid4()), bodies(count)
    assert await store.put_notifications(set_id, ref, updater, items, status)  # type: ignore[arg-type]
    return set_id, items


def url(set_id: uuid.UUID | str) -> str:
    return f"/notifier/api/v1/notification/{set_id}"


async def test_pages_walk_the_set_in_id_order(notifier: Notifier) -> None:
    set_id, items = await put_set(notifier.store, 5)
    want = sorted(str(b.id) for b in items)
    seen: list[str] = []
    nxt: str | None = None
    pages = 0
    while True:
        params = {"page_size": "2", **({"next": nxt} if nxt else {})}
        resp = await notifier.client.get(url(set_id), params=params)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == PAGE_TYPE
        doc = resp.json()
        assert doc["page"]["size"] == 2  # the size asked for, not the count
        seen += [n["id"] for n in doc["notifications"]]
        pages += 1
        nxt = doc["page"].get("next")
        if nxt is None:
            break
        assert nxt == seen[-1]
    assert pages == 3 and seen == want
    first = (await notifier.client.get(url(set_id), params={"page_size": "1"})).json()
    n = first["notifications"][0]
    assert list(n) == ["id", "manifest", "reason", "vulnerability"]
    assert n["manifest"] == MANIFEST and n["reason"] == "added"
    assert n["vulnerability"]["severity"] == "High"


async def test_exact_page_has_no_next(notifier: Notifier) -> None:
    set_id, _ = await put_set(notifier.store, 3)
    doc = (await notifier.client.get(url(set_id), params={"page_size": "3"})).json()
    assert doc["page"] == {"size": 3} and len(doc["notifications"]) == 3


@pytest.mark.parametrize(("raw", "size"), [(None, 500), ("0", 500), ("+7", 7), ("", 500)])
async def test_page_size_defaults(notifier: Notifier, raw: str | None, size: int) -> None:
    set_id, _ = await put_set(notifier.store, 2)
    params = {} if raw is None else {"page_size": raw}
    doc = (await notifier.client.get(url(set_id), params=params)).json()
    assert doc["page"] == {"size": size} and len(doc["notifications"]) == 2


@pytest.mark.parametrize("raw", ["abc", "1.5", " 3", "0x10", "99999999999999999999"])
async def test_page_size_not_an_integer_is_400(notifier: Notifier, raw: str) -> None:
    resp = await notifier.client.get(url(uuid.uuid4()), params={"page_size": raw})
    assert resp.status_code == 400
    assert resp.json() == {
        "code": "bad-request",
        "message": 'could not parse "page_size" query param into integer',
    }


async def test_negative_page_size_is_500(notifier: Notifier) -> None:
    resp = await notifier.client.get(url(uuid.uuid4()), params={"page_size": "-2"})
    assert resp.status_code == 500
    assert resp.json()["code"] == "internal-error"
    assert resp.json()["message"].startswith("failed to retrieve notifications")


async def test_next_nil_uuid_is_the_first_page_and_bad_next_is_400(notifier: Notifier) -> None:
    set_id, items = await put_set(notifier.store, 2)
    doc = (await notifier.client.get(url(set_id), params={"next": NIL})).json()
    assert [n["id"] for n in doc["notifications"]] == sorted(str(b.id) for b in items)
    bad = await notifier.client.get(url(set_id), params={"next": "nope"})
    assert bad.status_code == 400


async def test_unknown_set_is_an_empty_page_and_bad_id_400(notifier: Notifier) -> None:
    resp = await notifier.client.get(url(uuid.uuid4()))
    assert resp.status_code == 200
    assert resp.json() == {"page": {"size": 500}, "notifications": []}
    assert (await notifier.client.get(url("not-a-uuid"))).status_code == 400
    assert (await notifier.client.delete(url("not-a-uuid"))).status_code == 400


async def test_media_type_negotiation(notifier: Notifier) -> None:
    set_id, _ = await put_set(notifier.store, 1)
    plain = await notifier.client.get(url(set_id), headers={"Accept": "application/json"})
    assert plain.headers["content-type"] == "application/json"
    refused = await notifier.client.get(url(set_id), headers={"Accept": "text/html"})
    assert refused.status_code == 415


async def test_delete_marks_the_receipt_deleted(notifier: Notifier) -> None:
    set_id, _ = await put_set(notifier.store, 2)
    resp = await notifier.client.delete(url(set_id))
    assert resp.status_code == 200 and resp.content == b""
    assert await notifier.store.status(set_id) == "deleted"
    # Still pageable until garbage collection, and deleting again is fine.
    assert len((await notifier.client.get(url(set_id))).json()["notifications"]) == 2
    assert (await notifier.client.delete(url(set_id))).status_code == 200


async def test_delete_without_receipt_is_404(notifier: Notifier) -> None:
    # Clair answers 500 here (quay/clair#1716); an unknown id is a 404.
    unknown = uuid.uuid4()
    resp = await notifier.client.delete(url(unknown))
    assert resp.status_code == 404
    assert resp.json() == {
        "code": "not-found",
        "message": "could not delete notification: no receipt exists for notification id "
        + str(unknown),
    }


async def test_one_receipt_per_update_operation(notifier: Notifier) -> None:
    ref = str(uuid.uuid4())
    first, second = uuid.uuid4(), uuid.uuid4()
    assert await notifier.store.put_notifications(first, ref, "u", bodies(2))
    assert not await notifier.store.put_notifications(second, ref, "u", bodies(3))
    assert await notifier.store.receipted([ref, str(uuid.uuid4())]) == {ref}
    # The loser's set was rolled back whole.
    assert (await notifier.client.get(url(second))).json()["notifications"] == []
    assert await notifier.store.pending() == [first]


async def test_empty_set_is_receipted_delivered(notifier: Notifier) -> None:
    set_id, _ = await put_set(notifier.store, 0, status="delivered")
    assert await notifier.store.status(set_id) == "delivered"
    assert await notifier.store.pending() == []


async def test_garbage_collection(notifier: Notifier) -> None:
    store, pool = notifier.store, notifier.pool
    deleted, _ = await put_set(store, 2, updater="a")
    await store.set_status(deleted, "deleted")
    old, _ = await put_set(store, 1, updater="b")
    newest_b, _ = await put_set(store, 1, updater="b")
    lonely_old, _ = await put_set(store, 1, updater="c")
    waiting_old, _ = await put_set(store, 1, updater="d")
    await put_set(store, 1, updater="d")
    month_ago = datetime.now(UTC) - timedelta(days=30)
    for set_id, status in ((old, "delivered"), (lonely_old, "delivered"), (waiting_old, None)):
        await pool.execute(
            "UPDATE receipt SET ts = $2, status = coalesce($3::receipt_status, status)"
            " WHERE notification_id = $1",
            set_id,
            month_ago,
            status,
        )
        await pool.execute(
            "UPDATE notifier_update_operation o SET ts = $2 FROM receipt r"
            " WHERE r.uo_id = o.uo_id AND r.notification_id = $1",
            set_id,
            month_ago,
        )
    garbage = await store.collect_garbage()
    assert garbage is not None
    assert (garbage.bodies_deleted, garbage.sets_deleted, garbage.operations_deleted) == (2, 1, 1)
    # Deleted: bodies gone, receipt kept (the operation stays handled).
    assert await store.status(deleted) == "deleted"
    assert (await notifier.client.get(url(deleted))).json()["notifications"] == []
    # Old and superseded: gone. Old but its updater's newest, or still undelivered: kept.
    assert await store.status(old) is None
    assert await store.status(newest_b) == "created"
    assert await store.status(lonely_old) == "delivered"
    assert await store.status(waiting_old) == "created"
