"""Debian Security Tracker (claircore `debian/`): one `debian/updater` for every release.

The factory learns the releases from the archive mirror, as Clair does: the `dists/` index
page's links name the suites; aliases (stable, sid, ...) and pockets (-updates, -backports,
-security, ...) are skipped, and each remaining `dists/<codename>/Release` gives the major
version. The updater downloads the tracker JSON (`{source: {CVE: {description, releases:
{codename: {status, fixed_version, urgency}}}}}`) and emits one record per (source package,
CVE, known release); releases the mirror does not carry (sid, trixie before its release, ...)
are dropped. Records name the source package only: current Clair no longer expands them into
binary packages through the archive's Sources files; the matcher looks binaries up by their
source name. Fingerprint: Last-Modified, sent back as If-Modified-Since.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import aiohttp

from clair_common.distributions import debian_distribution
from clair_common.models import Distribution, Package, Vulnerability
from clair_matcher.updaters._conditional import (
    conditional_download,
    if_modified_since,
    last_modified,
)
from clair_matcher.updaters._config import (
    read_config,
    refused,
    setting,
    text,
    with_trailing_slash,
)

# The tracker is one big object, decoded a member (a source package) at a time.
from clair_matcher.updaters._stream_json import iter_members
from clair_matcher.updaters.base import (
    FeedError,
    FetchResult,
    UnchangedType,
    Updater,
    UpdaterSetFactory,
)

log = logging.getLogger("clair.matcher.updaters.debian")

DEFAULT_MIRROR = "https://deb.debian.org/"
DEFAULT_JSON = "https://security-tracker.debian.org/tracker/data/json"
LINK_PREFIX = "https://security-tracker.debian.org/tracker/"
UPDATER_NAME = "debian/updater"
DIST_ID = "debian"
DIST_NAME = "Debian GNU/Linux"

# Suite aliases and pockets in `dists/` that are not releases of their own.
_ALIASES = frozenset(
    [
        "stable",
        "oldstable",
        "oldoldstable",
        "testing",
        "unstable",
        "sid",
        "experimental",
        "rc-buggy",
    ]
)
_POCKETS = ("-backports", "-backports-sloppy", "-updates", "-proposed-updates", "-security")
# A Release file's header fits well within this; the rest is checksums.
_RELEASE_HEAD = 4096

# Clair's table (debian/severity.go): every urgency is one level above its plain meaning.
_SEVERITY = {"unimportant": "Low", "low": "Medium", "medium": "High", "high": "Critical"}


def normalize_severity(urgency: str) -> str:
    """Clair's normalized severity for a tracker urgency ("low**" and the like are Unknown)."""
    return _SEVERITY.get(urgency.lower(), "Unknown")


# -- release discovery ---------------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def suite_directories(page: str) -> list[str]:
    """Names of the release directories linked from a `dists/` index page, in page order."""
    parser = _Links()
    parser.feed(page)
    parser.close()
    out: list[str] = []
    for href in parser.hrefs:
        if not href.endswith("/") or "?" in href or href.startswith(("/", ".")):
            continue  # sort links, the parent directory, absolute links
        name = href[:-1]
        if not name or "/" in name or ":" in name or name in out:
            continue
        if name in _ALIASES or name.endswith(_POCKETS) or name.startswith("Debian"):
            continue  # aliases, pockets, and version symlinks such as Debian12.15
        out.append(name)
    return out


def release_fields(head: bytes) -> dict[str, str]:
    """The single-line fields at the top of a Release file (it may be cut off anywhere)."""
    fields: dict[str, str] = {}
    text = head.decode("utf-8", "replace")
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    for line in complete.splitlines():
        if not line.strip() or line[0].isspace():
            break  # the checksum lists start: no more simple fields
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def distribution_from_release(directory: str, fields: Mapping[str, str]) -> Distribution | None:
    """None for suites Clair skips: unstable, or no numeric `Version:`."""
    if fields.get("Suite") == "unstable":
        return None
    major_text = fields.get("Version", "").split(".")[0]
    if not major_text.isdigit():
        return None
    return debian_distribution(fields.get("Codename") or directory, int(major_text))


async def discover_releases(client: aiohttp.ClientSession, mirror: str) -> dict[str, Distribution]:
    """Codename → Distribution for every release the mirror's `dists/` lists."""
    index_url = urljoin(mirror, "dists/")
    try:
        async with client.get(index_url) as resp:
            if resp.status != 200:
                raise FeedError(f"debian: GET {index_url}: unexpected status {resp.status}")
            page = await resp.text(errors="replace")
        found: dict[str, Distribution] = {}
        for directory in suite_directories(page):
            url = urljoin(index_url, f"{directory}/Release")
            headers = {"Range": f"bytes=0-{_RELEASE_HEAD - 1}"}
            async with client.get(url, headers=headers) as resp:
                if resp.status == 404:
                    continue  # a very old suite without a Release file
                if resp.status not in (200, 206):
                    raise FeedError(f"debian: GET {url}: unexpected status {resp.status}")
                head = await resp.content.read(_RELEASE_HEAD)
            dist = distribution_from_release(directory, release_fields(head))
            if dist is None:
                log.debug("debian: %s is not a numbered release; skipped", url)
                continue
            found.setdefault(dist.version_code_name, dist)
    except aiohttp.ClientError as exc:
        raise FeedError(f"debian: release discovery at {index_url}: {exc}") from exc
    if not found:
        # Running with no releases would replace every stored Debian record with nothing.
        raise FeedError(f"debian: no releases found at {index_url}")
    return found


def _text(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""  # absent or null: Go's decoder leaves the string empty
    if not isinstance(value, str):
        raise FeedError(f"{where}.{key}: expected a string, found {type(value).__name__}")
    return value


# Configuration keys of the OVAL-era updater; Clair refuses them rather than ignore them.
_OLD_UPDATER = refused("no longer supported; set json_url")
_OLD_FACTORY = refused("no longer supported; set mirror_url and json_url")


@dataclass(frozen=True, slots=True)
class DebianConfig:
    """`updaters.config.debian`: `mirror_url` (the archive, for the release list) and
    `json_url` (the security tracker's JSON)."""

    archive_url: None = setting(_OLD_FACTORY, None)
    oval_url: None = setting(_OLD_FACTORY, None)
    url: None = setting(_OLD_FACTORY, None)
    dists_url: None = setting(_OLD_FACTORY, None)
    mirror_url: str = setting(text, "")
    json_url: str = setting(text, "")


@dataclass(frozen=True, slots=True)
class DebianUpdaterConfig:
    """`updaters.config.debian/updater`: `json_url`."""

    url: None = setting(_OLD_UPDATER, None)
    dists_url: None = setting(_OLD_UPDATER, None)
    json_url: str = setting(text, "")


class DebianUpdater(Updater):
    name = UPDATER_NAME
    version = "1"

    def __init__(self, json_url: str, releases: Mapping[str, Distribution]) -> None:
        self.url = json_url
        self.releases = dict(releases)

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(DebianUpdaterConfig, config, self.name)
        if settings.json_url:
            self.url = settings.json_url

    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | UnchangedType:
        return await conditional_download(
            client,
            self.url,
            prev_fingerprint,
            feed=self.name,
            suffix=".json",
            conditional_headers=if_modified_since,
            fingerprint_of=last_modified,
        )

    def parse(self, fetched: FetchResult) -> Iterator[Vulnerability]:
        feed = f"{self.name} ({fetched.url})"
        with fetched.path.open("rb") as fp:
            for source, vulns in iter_members(fp, feed=feed):
                yield from self._source(source, vulns, f"{feed}: [{source!r}]")

    def _source(self, source: str, vulns: Any, where: str) -> Iterator[Vulnerability]:
        if not isinstance(vulns, dict):
            raise FeedError(f"{where}: expected an object of vulnerabilities")
        package = Package(name=source, kind="source")
        for vuln_id, data in vulns.items():
            at = f"{where}[{vuln_id!r}]"
            if not isinstance(data, dict):
                raise FeedError(f"{at}: expected an object")
            description = _text(data, "description", at)
            releases = data.get("releases")
            if releases is None or releases == []:
                continue  # no release data (a few entries carry an empty list)
            if not isinstance(releases, dict):
                raise FeedError(f"{at}.releases: expected an object")
            for codename, status in releases.items():
                dist = self.releases.get(codename)
                if dist is None:
                    continue  # sid, or a release the mirror does not have
                if not isinstance(status, dict):
                    raise FeedError(f"{at}.releases[{codename!r}]: expected an object")
                urgency = _text(status, "urgency", f"{at}.releases[{codename!r}]")
                yield Vulnerability(
                    updater=self.name,
                    name=vuln_id,
                    description=description,
                    links=LINK_PREFIX + vuln_id,
                    severity=urgency,
                    normalized_severity=normalize_severity(urgency),
                    package=package,
                    distribution=dist,
                    fixed_in_version=_text(status, "fixed_version", f"{at}.releases[{codename!r}]"),
                )


class DebianFactory(UpdaterSetFactory):
    name = "debian"

    def __init__(self) -> None:
        self.mirror = DEFAULT_MIRROR
        self.json_url = DEFAULT_JSON

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(DebianConfig, config, self.name)
        self.mirror = (
            with_trailing_slash(settings.mirror_url) if settings.mirror_url else DEFAULT_MIRROR
        )
        self.json_url = settings.json_url or DEFAULT_JSON

    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]:
        releases = await discover_releases(client, self.mirror)
        log.info("debian: releases %s", ", ".join(sorted(releases)))
        return [DebianUpdater(self.json_url, releases)]
