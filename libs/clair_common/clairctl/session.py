"""The HTTP session each clairctl client (Clair's API, a registry) keeps for its requests."""

from __future__ import annotations

import aiohttp


class LazySession:
    """One aiohttp session with clairctl's User-Agent, made on first use (so a command that
    sends nothing opens nothing) and closed by `close`, after which a new one may be made."""

    def __init__(self, timeout: aiohttp.ClientTimeout) -> None:
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": "clairctl"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
