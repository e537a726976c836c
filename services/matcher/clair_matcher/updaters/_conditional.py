"""Conditional feed downloads: fetch only what changed since the previous fingerprint.

The fingerprint is the response's validator (ETag, else Last-Modified by default), sent back on
the next run; a 304, or a 200 carrying the same validator, is Unchanged. Shared by the updaters
and the enrichers.
"""

from __future__ import annotations

import email.utils
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from clair_matcher.updaters._config import UrlConfig, read_config
from clair_matcher.updaters.base import FeedError, FetchResult, Unchanged, UnchangedType, Updater

CHUNK = 1 << 16


def _parses_as_date(text: str) -> bool:
    try:
        email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return False
    return True


def request_headers(prev_fingerprint: str) -> dict[str, str]:
    """An HTTP-date fingerprint goes back as If-Modified-Since, anything else as If-None-Match."""
    fp = prev_fingerprint.strip()
    if not fp:
        return {}
    if not fp.startswith(('"', 'W/"')) and _parses_as_date(fp):
        return {"If-Modified-Since": fp}
    return {"If-None-Match": fp}


def response_fingerprint(resp: aiohttp.ClientResponse) -> str:
    """Clair keeps the ETag; a server without one still offers Last-Modified."""
    return resp.headers.get("ETag") or resp.headers.get("Last-Modified") or ""


def if_modified_since(prev_fingerprint: str) -> dict[str, str]:
    """The fingerprint is a Last-Modified date, sent back as it is."""
    return {"If-Modified-Since": prev_fingerprint} if prev_fingerprint else {}


def last_modified(resp: aiohttp.ClientResponse) -> str:
    """Feeds whose Clair updater keys on Last-Modified alone (debian), ignoring any ETag."""
    return resp.headers.get("Last-Modified", "")


async def conditional_download(
    client: aiohttp.ClientSession,
    url: str,
    prev_fingerprint: str,
    *,
    feed: str,
    suffix: str,
    conditional_headers: Callable[[str], dict[str, str]] = request_headers,
    fingerprint_of: Callable[[aiohttp.ClientResponse], str] = response_fingerprint,
) -> FetchResult | UnchangedType:
    """GET `url` into a temporary file unless it is unchanged since `prev_fingerprint`.

    Unchanged is a 304, or a 200 carrying the same validator (Clair's alpine rule). The
    validator is ETag or Last-Modified by default; `conditional_headers` and `fingerprint_of`
    (e.g. :func:`if_modified_since` and :func:`last_modified`) pick another.
    """
    try:
        async with client.get(url, headers=conditional_headers(prev_fingerprint)) as resp:
            if resp.status == 304:
                return Unchanged
            if resp.status != 200:
                raise FeedError(f"{feed}: GET {url}: unexpected status {resp.status}")
            fingerprint = fingerprint_of(resp)
            if prev_fingerprint and fingerprint == prev_fingerprint:
                return Unchanged
            fd, name = tempfile.mkstemp(prefix="clair-feed-", suffix=suffix)
            path = Path(name)
            try:
                with os.fdopen(fd, "wb") as out:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        out.write(chunk)
            except BaseException:
                path.unlink(missing_ok=True)  # noqa: ASYNC240 - a quick local cleanup
                raise
    except aiohttp.ClientError as exc:
        raise FeedError(f"{feed}: GET {url}: {exc or type(exc).__name__}") from exc
    return FetchResult(path=path, fingerprint=fingerprint, url=url)


class DocumentUpdater(Updater):
    """An updater whose feed is one document at `url`, downloaded when it changed; its block
    (`config_type`) may move the document elsewhere."""

    config_type: ClassVar[type[UrlConfig]]
    suffix: ClassVar[str]  # the download's file name ending: what parse expects it to be
    url: str

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(self.config_type, config, self.name)
        if settings.url:
            self.url = settings.url

    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | UnchangedType:
        return await conditional_download(
            client, self.url, prev_fingerprint, feed=self.name, suffix=self.suffix
        )
