"""Clair's v1 API as a client: submit a manifest, follow its indexing, read the reports.

Requests are signed with the PSK when one is configured (`--issuer`, default `clairctl`), as
Clair's clairctl does. Failures are worded with what to do next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import orjson

from clair_common.clairctl.session import LazySession
from clair_common.http.auth import sign
from clair_common.models import Manifest

DEFAULT_HOST = "http://127.0.0.1:6060/"
DEFAULT_ISSUER = "clairctl"
_FINAL_STATES = frozenset({"IndexFinished", "IndexError"})
_POLL_SECONDS = 0.5


class ClairError(RuntimeError):
    """A failed API call, worded with what to do next."""


class NotInitialized(ClairError):
    """The matcher has no vulnerability data yet (202 from the report route)."""


class ClairClient:
    def __init__(
        self,
        host: str = DEFAULT_HOST,
        *,
        psk: bytes | None = None,
        issuer: str = DEFAULT_ISSUER,
    ) -> None:
        self._base = host.rstrip("/")
        self._psk = psk
        self._issuer = issuer
        self._session = LazySession(
            aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=900)
        )

    async def index_report(self, digest: str) -> dict[str, Any] | None:
        status, doc = await self._call("GET", f"/indexer/api/v1/index_report/{digest}", (200, 404))
        return doc if status == 200 else None

    async def index(
        self, manifest: Manifest, on_state: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """POST the manifest; while the indexer works, report its state through `on_state`."""
        post = asyncio.ensure_future(
            self._call("POST", "/indexer/api/v1/index_report", (200, 201), manifest.to_json())
        )
        if on_state is not None:
            while not post.done():
                await asyncio.wait([post], timeout=_POLL_SECONDS)
                if post.done():
                    break
                current = await self.index_report(manifest.hash)
                if current is not None and current.get("state") not in _FINAL_STATES:
                    on_state(str(current.get("state", "")))
        _, doc = await post
        if doc.get("state") == "IndexError" or doc.get("success") is False:
            raise ClairError(f"indexing {manifest.hash} failed: {doc.get('err') or 'no reason'}")
        return dict(doc)

    async def vulnerability_report(self, digest: str) -> dict[str, Any]:
        status, doc = await self._call(
            "GET", f"/matcher/api/v1/vulnerability_report/{digest}", (200, 202)
        )
        if status == 202:
            raise NotInitialized(
                "the matcher has not loaded any vulnerability feed yet, so every report would"
                " be empty: wait for the first update run (see the server log), or load an"
                " export with `clairctl import-updaters FILE`"
            )
        return dict(doc)

    async def delete(self, digests: Sequence[str]) -> list[str]:
        _, doc = await self._call("DELETE", "/indexer/api/v1/index_report", (200,), list(digests))
        return [str(d) for d in doc or []]

    async def _call(
        self, method: str, path: str, ok: Sequence[int], body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if self._psk:
            headers["Authorization"] = "Bearer " + sign(self._psk, self._issuer)
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        url = self._base + path
        try:
            async with self._client().request(method, url, data=data, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            raise ClairError(
                f"cannot reach Clair at {self._base} ({exc.strerror or exc}): is the server"
                " running? Start one with `make run` (or `clair serve`), or point --host"
                " (env CLAIR_API) at yours"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ClairError(f"{method} {url}: {exc}") from exc
        if status == 401:
            raise ClairError(
                f"{method} {url}: 401: the server requires a PSK-signed token; pass the"
                " server's config with --config (its auth.psk key) and an allowed --issuer"
            )
        if status not in ok:
            raise ClairError(f"{method} {url}: status {status}: {_message(raw)}")
        try:
            return status, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise ClairError(f"{method} {url}: the answer is not JSON") from exc

    def _client(self) -> aiohttp.ClientSession:
        return self._session.get()

    async def close(self) -> None:
        await self._session.close()


def _message(raw: bytes) -> str:
    try:
        doc = orjson.loads(raw)
        if isinstance(doc, dict) and "message" in doc:
            return str(doc["message"])
    except orjson.JSONDecodeError:
        pass
    return raw[:200].decode(errors="replace")
