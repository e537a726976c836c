"""HTTP implementations of the service Protocols, for the distributed modes (clair-api.md 3.3)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict
from opentelemetry import propagate

from clair_common.cache import BoundedCache
from clair_common.http.auth import INTRASERVICE_ISSUER, sign
from clair_common.models import (
    NIL_UUID,
    AffectedManifests,
    IndexReport,
    IndexState,
    Manifest,
    UpdateDiff,
    UpdateOperation,
    Vulnerability,
    VulnerabilityReport,
)
from clair_common.tls import client_session


class RemoteError(RuntimeError):
    pass


def _finished(raw: bytes) -> bool:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and doc.get("state") == IndexState.FINISHED


class _Client:
    def __init__(self, base_url: str, psk: bytes | None) -> None:
        if not base_url:
            raise ValueError("peer address is not configured")
        # Clair's sample and Quay's configs write bare `host:port` or `host`: plain HTTP.
        if "://" not in base_url:
            base_url = "http://" + base_url
        self._base = base_url.rstrip("/")
        self._psk = psk
        self._session: aiohttp.ClientSession | None = None

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._psk:
            headers["Authorization"] = "Bearer " + sign(self._psk, INTRASERVICE_ISSUER)
        if extra:
            headers.update(extra)
        propagate.inject(headers)  # W3C traceparent: one trace across services
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        ok: Sequence[int] = (200,),
        headers: dict[str, str] | None = None,
        parse: bool = True,
    ) -> tuple[int, Any, CIMultiDict[str]]:
        """(status, the JSON body parsed, or its bytes if not `parse`, response headers)."""
        if self._session is None:
            self._session = client_session(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)
            )
        data = orjson.dumps(body) if body is not None else None
        hdrs = self._headers(headers)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        async with self._session.request(
            method, self._base + path, data=data, params=params, headers=hdrs
        ) as resp:
            raw = await resp.read()
            if resp.status not in ok:
                raise RemoteError(f"{method} {path}: {resp.status} {raw[:200]!r}")
            if parse:
                return resp.status, orjson.loads(raw) if raw else None, CIMultiDict(resp.headers)
            return resp.status, raw, CIMultiDict(resp.headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# How long the matcher trusts what it holds from the indexer before asking again: reports are
# polled hundreds of times a second, and a round trip each to the indexer was most of their cost.
INDEXER_FRESHNESS = 1.0
INDEX_REPORT_CACHE_BYTES = 64 << 20


@dataclass
class _HeldIndexReport:
    body: bytes  # a finished report's JSON, as the indexer stored it
    etag: str  # the indexer's tag for it (its index state)
    validated: float  # monotonic time of the last answer from the indexer


class RemoteIndexer(_Client):
    """Finished index reports and the index state are held for `freshness` seconds, then
    revalidated with a conditional request (an unchanged report costs the indexer a 304).

    A finished report changes only with the indexer's state (its scanners), which is its tag,
    or when the manifest is deleted (the indexer answers 404, never 304, then)."""

    def __init__(
        self,
        base_url: str,
        psk: bytes | None,
        *,
        freshness: float = INDEXER_FRESHNESS,
        max_bytes: int = INDEX_REPORT_CACHE_BYTES,
    ) -> None:
        super().__init__(base_url, psk)
        self._freshness = freshness
        self._state: tuple[str, float] | None = None  # (state, when the indexer said it)
        self._reports: BoundedCache[str, _HeldIndexReport] = BoundedCache(
            max_bytes, lambda held: len(held.body), max_share=8
        )

    async def index(self, manifest: Manifest) -> IndexReport:
        _, doc, _ = await self._request(
            "POST", "/indexer/api/v1/index_report", body=manifest.to_json(), ok=(201,)
        )
        return IndexReport.from_json(doc)

    async def index_report_json(self, digest: str) -> bytes | None:
        now = time.monotonic()
        held = self._reports.get(digest)
        if held is not None and now - held.validated < self._freshness:
            return held.body
        status, raw, headers = await self._request(
            "GET",
            f"/indexer/api/v1/index_report/{digest}",
            ok=(200, 304, 404),
            parse=False,
            headers={"If-None-Match": held.etag} if held is not None else None,
        )
        etag = headers.get("ETag", "")
        if etag.startswith('"') and etag.endswith('"') and len(etag) > 1:
            self._state = (etag[1:-1], now)  # the indexer's tag is its state
        if status == 304 and held is not None:
            held.validated = now
            return held.body
        if status != 200:
            self._reports.pop(digest)
            return None
        if etag and _finished(raw):  # a report still in progress changes under the same tag
            self._reports.put(digest, _HeldIndexReport(raw, etag, now))
        else:
            self._reports.pop(digest)
        return bytes(raw)

    async def state(self) -> str:
        now = time.monotonic()
        if self._state is not None and now - self._state[1] < self._freshness:
            return self._state[0]
        _, doc, _ = await self._request("GET", "/indexer/api/v1/index_state")
        state = str(doc["state"])
        self._state = (state, now)
        return state

    async def affected_manifests(self, vulns: Sequence[Vulnerability]) -> AffectedManifests:
        _, doc, _ = await self._request(
            "POST",
            "/indexer/api/v1/internal/affected_manifest/",
            body={"vulnerabilities": [v.to_json() for v in vulns]},
        )
        return AffectedManifests(
            vulnerabilities={
                k: Vulnerability.from_json(v) for k, v in (doc.get("vulnerabilities") or {}).items()
            },
            vulnerable_manifests=doc.get("vulnerable_manifests") or {},
        )

    async def delete_manifests(self, digests: Sequence[str]) -> list[str]:
        _, doc, _ = await self._request(
            "DELETE", "/indexer/api/v1/index_report", body=list(digests)
        )
        return list(doc or [])


def _update_operation(doc: dict[str, Any]) -> UpdateOperation:
    from datetime import datetime

    return UpdateOperation(
        ref=doc["ref"],
        updater=doc["updater"],
        fingerprint=doc.get("fingerprint", ""),
        date=datetime.fromisoformat(doc["date"].replace("Z", "+00:00")),
        kind=doc.get("kind", ""),
    )


class RemoteMatcher(_Client):
    async def scan(self, report: IndexReport) -> VulnerabilityReport:
        raise RemoteError("vulnerability reports are requested by clients, not by peers")

    async def update_operations(
        self, kind: str = "vulnerability", *, latest: bool = False, updaters: Sequence[str] = ()
    ) -> dict[str, list[UpdateOperation]]:
        params = {"kind": kind}
        if latest:
            params["latest"] = "true"
        _, doc, _ = await self._request(
            "GET", "/matcher/api/v1/internal/update_operation", params=params
        )
        out = {name: [_update_operation(u) for u in ops] for name, ops in (doc or {}).items()}
        return {k: v for k, v in out.items() if not updaters or k in updaters}

    async def update_diff(self, prev: str | None, cur: str) -> UpdateDiff:
        params = {"cur": cur}
        if prev:
            params["prev"] = prev
        _, doc, _ = await self._request(
            "GET", "/matcher/api/v1/internal/update_diff", params=params
        )
        prev_doc = doc.get("prev") or {}
        return UpdateDiff(
            cur=_update_operation(doc["cur"]),
            # Clair sends a zero-valued operation (nil uuid ref) when there is no previous one.
            prev=_update_operation(prev_doc) if prev_doc.get("ref", NIL_UUID) != NIL_UUID else None,
            added=[Vulnerability.from_json(v) for v in doc.get("added") or []],
            removed=[Vulnerability.from_json(v) for v in doc.get("removed") or []],
        )

    async def update_diff_batches(
        self, prev: str | None, cur: str, size: int
    ) -> AsyncIterator[tuple[str, list[Vulnerability]]]:
        # Clair's update_diff route answers the whole diff in one document.
        diff = await self.update_diff(prev, cur)
        for reason, vulns in (("added", diff.added), ("removed", diff.removed)):
            for start in range(0, len(vulns), size):
                yield reason, vulns[start : start + size]

    async def delete_update_operations(self, refs: Sequence[str]) -> int:
        for ref in refs:
            await self._request("DELETE", f"/matcher/api/v1/internal/update_operation/{ref}")
        return len(refs)
