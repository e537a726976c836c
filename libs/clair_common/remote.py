"""HTTP implementations of the service Protocols, for the distributed modes (clair-api.md 3.3)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import orjson

from clair_common.http.auth import INTRASERVICE_ISSUER, sign
from clair_common.models import (
    NIL_UUID,
    AffectedManifests,
    IndexReport,
    Manifest,
    UpdateDiff,
    UpdateOperation,
    Vulnerability,
    VulnerabilityReport,
)


class RemoteError(RuntimeError):
    pass


class _Client:
    def __init__(self, base_url: str, psk: bytes | None) -> None:
        if not base_url:
            raise ValueError("peer address is not configured")
        self._base = base_url.rstrip("/")
        self._psk = psk
        self._session: aiohttp.ClientSession | None = None

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._psk:
            headers["Authorization"] = "Bearer " + sign(self._psk, INTRASERVICE_ISSUER)
        if extra:
            headers.update(extra)
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
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, the JSON body parsed, or its bytes if not `parse`, response headers)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
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
                return resp.status, orjson.loads(raw) if raw else None, dict(resp.headers)
            return resp.status, raw, dict(resp.headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class RemoteIndexer(_Client):
    async def index(self, manifest: Manifest) -> IndexReport:
        _, doc, _ = await self._request(
            "POST", "/indexer/api/v1/index_report", body=manifest.to_json(), ok=(201,)
        )
        return IndexReport.from_json(doc)

    async def index_report_json(self, digest: str) -> bytes | None:
        status, raw, _ = await self._request(
            "GET", f"/indexer/api/v1/index_report/{digest}", ok=(200, 404), parse=False
        )
        return raw if status == 200 else None

    async def state(self) -> str:
        _, doc, _ = await self._request("GET", "/indexer/api/v1/index_state")
        return str(doc["state"])

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
