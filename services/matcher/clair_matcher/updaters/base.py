"""The updater plug-in interface: sets discovered by factories, conditional fetch, streaming parse.

An updater set factory (one per set name in `updaters.sets`, e.g. `alpine`) discovers the
updaters to run (e.g. `alpine-main-v3.16-updater`). An updater fetches its feed into a temporary
file only when it changed since the previous fingerprint, then parses that file into a stream of
Vulnerability records, so memory stays bounded whatever the feed size.
"""

from __future__ import annotations

import abc
import contextlib
import email.utils
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import aiohttp

from clair_common.models import Vulnerability

CHUNK = 1 << 16


class FeedError(Exception):
    """A feed that could not be fetched or parsed; the message names the feed and position."""


class ConfigProblem(ValueError):
    """Bad `updaters.config.<key>` contents."""


class _Unchanged:
    """The feed has not changed since the previous fingerprint: no new update operation."""

    _instance: ClassVar[_Unchanged | None] = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Unchanged"


Unchanged: Final = _Unchanged()
UnchangedType = _Unchanged


@dataclass(slots=True)
class FetchResult:
    """A downloaded feed in a temporary file owned by the caller (call `discard`)."""

    path: Path
    fingerprint: str
    url: str

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Updater(abc.ABC):
    """One feed. `version` is bumped when the records it produces change shape."""

    name: str
    version: str = "1"

    def configure(self, config: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Apply `updaters.config.<updater name>`; the default accepts nothing to configure."""

    @abc.abstractmethod
    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | _Unchanged: ...

    @abc.abstractmethod
    def parse(self, fetched: FetchResult) -> Iterator[Vulnerability]:
        """Yields records one at a time; raises FeedError naming the position of bad input.

        Runs in a worker thread (it is CPU work), so it must not touch the event loop.
        """


class UpdaterSetFactory(abc.ABC):
    """Builds the updaters of one set; may do network discovery and cache it between runs."""

    name: str

    def configure(self, config: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Apply `updaters.config.<set name>`."""

    @abc.abstractmethod
    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]: ...


def config_str(config: Mapping[str, Any], key: str, where: str) -> str:
    value = config.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigProblem(f"updaters.config.{where}.{key}: expected a string")
    return value


def config_str_list(config: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = config.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigProblem(f"updaters.config.{where}.{key}: expected a list of strings")
    return list(value)


def with_trailing_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


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
) -> FetchResult | _Unchanged:
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
