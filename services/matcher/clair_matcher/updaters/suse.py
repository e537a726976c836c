"""SUSE OVAL (claircore `suse/`): one updater per SLES major release and openSUSE Leap release.

The factory reads SUSE's OVAL directory index (HTML) and keeps the links to
`suse.linux.enterprise.server.<NN>.xml.gz` and `opensuse.leap.<X.Y>.xml.gz` (Leap 15.5 and
later: older Leap documents describe releases Clair no longer scans). Each becomes an updater
named after its distribution's pretty name, `suse-updater-suse.linux.enterprise.server.15`,
fetched with ovalutil's fingerprint and mapped through the shared rpminfo code; every record
carries the distribution the SUSE distribution scanner reports for that release (both build it
with `clair_common.distributions`). As in Clair, records take no issued date and keep the
advisory's severity word next to Clair's reading of it.

`updaters.config.suse` takes `url` (the directory); each updater takes `url` and `compression`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from clair_common.distributions import leap_distribution, sles_distribution
from clair_common.models import ZERO_TIME, Distribution, Vulnerability
from clair_matcher.updaters._config import read_config, setting, text, with_trailing_slash
from clair_matcher.updaters._oval import Definition, OvalRpmUpdater, proto_vulnerability
from clair_matcher.updaters.base import FeedError, Updater, UpdaterSetFactory

log = logging.getLogger("clair.matcher.updaters.suse")

DEFAULT_URL = "https://ftp.suse.com/pub/projects/security/oval/"
# claircore suse/factory.go; SLES 10 and 20 are out of its pattern, as there.
_SLES_FILE = re.compile(r"suse\.linux\.enterprise\.server\.([1-9][1-9])\.xml\.gz")
_LEAP_FILE = re.compile(r"opensuse\.leap\.(1[0-9])\.([0-9]+)\.xml\.gz")
MINIMUM_LEAP = (15, 5)
# claircore suse/normalizeseverity.go: exact, case-sensitive.
SEVERITIES = {
    "None": "Unknown",
    "Low": "Low",
    "Moderate": "Medium",
    "Important": "High",
    "Critical": "Critical",
}


def normalize_severity(severity: str) -> str:
    return SEVERITIES.get(severity, "Unknown")


def document_distribution(filename: str) -> Distribution | None:
    """The release an OVAL file name stands for; None for files Clair does not use."""
    if found := _SLES_FILE.fullmatch(filename):
        return sles_distribution(found[1])
    found = _LEAP_FILE.fullmatch(filename)
    if found and (int(found[1]), int(found[2])) >= MINIMUM_LEAP:
        return leap_distribution(f"{found[1]}.{found[2]}")
    return None


def updater_name(dist: Distribution) -> str:
    return "suse-updater-" + dist.pretty_name.lower().replace(" ", ".")


class SuseUpdater(OvalRpmUpdater):
    version = "1"

    def __init__(self, dist: Distribution, url: str) -> None:
        super().__init__(updater_name(dist), url, "gzip")
        self.dist = dist

    def prototypes(self, defn: Definition) -> Sequence[Vulnerability]:
        proto = proto_vulnerability(self.name, defn, normalize_severity)
        return [replace(proto, issued=ZERO_TIME, distribution=self.dist)]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def index_documents(page: str, base: str) -> list[tuple[Distribution, str]]:
    """(distribution, absolute URL) of every usable document linked from an index page,
    first link per release, in page order."""
    parser = _Links()
    parser.feed(page)
    parser.close()
    out: dict[str, tuple[Distribution, str]] = {}
    for href in parser.hrefs:
        filename = urlsplit(href).path.rpartition("/")[2]
        dist = document_distribution(filename)
        if dist is not None:
            out.setdefault(updater_name(dist), (dist, urljoin(base, href)))
    return list(out.values())


@dataclass(frozen=True, slots=True)
class SuseConfig:
    """`updaters.config.suse`: `url`, the OVAL directory whose index names the documents."""

    url: str = setting(text, "")


class SuseFactory(UpdaterSetFactory):
    name = "suse"

    def __init__(self) -> None:
        self.base = DEFAULT_URL

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(SuseConfig, config, self.name)
        self.base = with_trailing_slash(settings.url) if settings.url else DEFAULT_URL

    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]:
        try:
            async with client.get(self.base) as resp:
                if resp.status != 200:
                    raise FeedError(f"suse: GET {self.base}: unexpected status {resp.status}")
                page = await resp.text(errors="replace")
        except aiohttp.ClientError as exc:
            raise FeedError(f"suse: GET {self.base}: {exc or type(exc).__name__}") from exc
        documents = index_documents(page, self.base)
        log.info("suse: documents %s", ", ".join(url for _, url in documents) or "none")
        return [SuseUpdater(dist, url) for dist, url in documents]
