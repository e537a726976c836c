"""Alpine SecDB (claircore `alpine/`): one updater per (release, repository) that the site has.

Discovery follows Clair's factory: GET `last-update` (If-None-Match); when it changed, HEAD
`v3.3/`, `v3.4/`, ... until a miss (then the next major from `.0`, stopping when a major has
no minor at all), then HEAD `<release>/main.json` and `community.json` for each release and for
`edge`. Each secfix id becomes one vulnerability of the source package, kept verbatim (ids
like "CVE-2017-8904 XSA-214" stay whole, as in Clair); fixed version "0" means not affected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp

from clair_common.models import Distribution, Package, Vulnerability
from clair_matcher.updaters._conditional import DocumentUpdater
from clair_matcher.updaters._config import (
    UrlConfig,
    read_config,
    setting,
    text,
    with_trailing_slash,
)
from clair_matcher.updaters._stream_json import iter_array_items
from clair_matcher.updaters.base import (
    FeedError,
    FetchResult,
    Updater,
    UpdaterSetFactory,
)

log = logging.getLogger("clair.matcher.updaters.alpine")

DEFAULT_URL = "https://secdb.alpinelinux.org/"
LINK_PREFIX = "https://security.alpinelinux.org/vuln/"
REPOSITORIES = ("main", "community")
DIST_NAME = "Alpine Linux"
DIST_ID = "alpine"


@dataclass(frozen=True, slots=True)
class Release:
    """A stable `vX.Y` release, or edge when `major` is None."""

    major: int | None = None
    minor: int = 0

    @property
    def label(self) -> str:
        return "edge" if self.major is None else f"v{self.major}.{self.minor}"

    def distribution(self) -> Distribution:
        if self.major is None:
            return Distribution(
                did=DIST_ID, name=DIST_NAME, version_id="edge", pretty_name="Alpine Linux edge"
            )
        version = f"{self.major}.{self.minor}"
        return Distribution(
            did=DIST_ID, name=DIST_NAME, version_id=version, pretty_name=f"Alpine Linux v{version}"
        )


EDGE = Release()


@dataclass(frozen=True, slots=True)
class AlpineConfig:
    """`updaters.config.alpine`: `url`, the SecDB base."""

    url: str = setting(text, "")


@dataclass(frozen=True, slots=True)
class AlpineUpdaterConfig(UrlConfig):
    """`updaters.config.alpine-<repo>-<release>-updater`: `url`, the database's own URL."""


class AlpineUpdater(DocumentUpdater):
    version = "1"
    config_type = AlpineUpdaterConfig
    suffix = ".json"

    def __init__(self, release: Release, repo: str, url: str) -> None:
        self.release = release
        self.repo = repo
        self.url = url
        self.name = f"alpine-{repo}-{release.label}-updater"

    def parse(self, fetched: FetchResult) -> Iterator[Vulnerability]:
        feed = f"{self.name} ({fetched.url})"
        dist = self.release.distribution()
        with fetched.path.open("rb") as fp:
            for index, entry in iter_array_items(fp, "packages", feed=feed):
                yield from self._package(entry, dist, f"{feed}: packages[{index}]")

    def _package(self, entry: Any, dist: Distribution, where: str) -> Iterator[Vulnerability]:
        pkg = entry.get("pkg") if isinstance(entry, dict) else None
        if not isinstance(pkg, dict):
            raise FeedError(f"{where}: expected an object with a 'pkg' object")
        name = pkg.get("name")
        if not isinstance(name, str):
            raise FeedError(f"{where}.pkg.name: expected a string")
        secfixes = pkg.get("secfixes") or {}
        if not isinstance(secfixes, dict):
            raise FeedError(f"{where}.pkg.secfixes: expected an object")
        package = Package(name=name, kind="source")
        for fixed, ids in secfixes.items():
            if ids is None or ids == "":
                continue  # a version listed without ids (YAML's empty value)
            if not isinstance(ids, list):
                raise FeedError(f"{where}.pkg.secfixes[{fixed!r}]: expected a list")
            for flaw in ids:
                if not isinstance(flaw, str):
                    continue  # YAML-born nulls; Clair's decoder yields "" and they never match
                yield Vulnerability(
                    updater=self.name,
                    name=flaw,
                    links=LINK_PREFIX + flaw,
                    normalized_severity="Unknown",
                    package=package,
                    distribution=dist,
                    fixed_in_version=str(fixed),
                )


class AlpineFactory(UpdaterSetFactory):
    name = "alpine"

    def __init__(self) -> None:
        self.base = DEFAULT_URL
        self._etag = ""
        self._stamp: bytes | None = None
        self._current: list[AlpineUpdater] = []

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(AlpineConfig, config, self.name)
        self.base = with_trailing_slash(settings.url) if settings.url else DEFAULT_URL

    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]:
        stamp_url = urljoin(self.base, "last-update")
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            async with client.get(stamp_url, headers=headers) as resp:
                if resp.status == 304:
                    return list(self._current)
                if resp.status != 200:
                    raise FeedError(f"alpine: GET {stamp_url}: unexpected status {resp.status}")
                stamp = await resp.read()
                etag = resp.headers.get("ETag", "")
            if stamp == self._stamp:
                return list(self._current)
            releases = await self._releases(client)
            found = await self._databases(client, [*releases, EDGE])
        except aiohttp.ClientError as exc:
            raise FeedError(f"alpine: discovery at {self.base}: {exc}") from exc
        self._etag, self._stamp, self._current = etag, stamp, found
        return list(found)

    async def _exists(self, client: aiohttp.ClientSession, url: str) -> bool:
        async with client.head(url, allow_redirects=True) as resp:
            if resp.status not in (200, 404):
                # Clair retries the next name on odd statuses; a miss is safer (it cannot loop).
                log.info("alpine: HEAD %s: unexpected status %s", url, resp.status)
            return resp.status == 200

    async def _releases(self, client: aiohttp.ClientSession) -> list[Release]:
        found: list[Release] = []
        major = 3
        while True:
            minor = 3 if major == 3 else 0  # Clair starts at v3.3
            found_in_major = False
            while True:
                release = Release(major, minor)
                if not await self._exists(client, urljoin(self.base, release.label + "/")):
                    break
                found.append(release)
                found_in_major = True
                minor += 1
            if not found_in_major:
                return found
            major += 1

    async def _databases(
        self, client: aiohttp.ClientSession, releases: Sequence[Release]
    ) -> list[AlpineUpdater]:
        out = []
        for release in releases:
            for repo in REPOSITORIES:
                url = urljoin(self.base, f"{release.label}/{repo}.json")
                if await self._exists(client, url):
                    out.append(AlpineUpdater(release, repo, url))
        return out
