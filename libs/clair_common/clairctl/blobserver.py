"""A short-lived HTTP listener serving archive layers to the indexer during one command.

Blobs are served from byte ranges of the archive (nothing is extracted) under a random path
prefix, so another client on the network cannot guess the URLs while it runs.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Mapping

from aiohttp import web

from clair_common.clairctl.archive import ArchiveError, Blob

_CHUNK = 1 << 20


class BlobServer:
    def __init__(self, blobs: Mapping[str, Blob], listen: str = "127.0.0.1:0") -> None:
        self._blobs = dict(blobs)
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise ArchiveError(f"--serve-addr {listen!r}: expected HOST:PORT")
        self._host, self._port = host.strip("[]"), int(port)
        self._secret = secrets.token_urlsafe(16)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(f"/{self._secret}/blobs/{{digest}}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ArchiveError(
                f"--serve-addr {self._host}:{self._port}: cannot listen: {exc.strerror}"
            ) from exc
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self._port
        host = self._host
        if host in ("0.0.0.0", "::", ""):
            # Listening everywhere: advertise a name a remote indexer can resolve.
            host = socket.getfqdn()
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{port}/{self._secret}"

    def url(self, digest: str) -> str:
        return f"{self.base_url}/blobs/{digest}"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        blob = self._blobs.get(request.match_info["digest"])
        if blob is None:
            raise web.HTTPNotFound()
        resp = web.StreamResponse(
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
        )
        await resp.prepare(request)
        with blob.path.open("rb") as fh:
            fh.seek(blob.offset)
            left = blob.size
            while left:
                chunk = fh.read(min(left, _CHUNK))
                if not chunk:
                    break
                await resp.write(chunk)
                left -= len(chunk)
        await resp.write_eof()
        return resp

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
