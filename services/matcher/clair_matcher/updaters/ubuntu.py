"""Ubuntu CVE OVAL (claircore `ubuntu/`): an updater per active series, `ubuntu/updater/<codename>`.

The factory asks Launchpad for the distribution's series (`<api>/<name>/series`: JSON
`entries[]` with `name`, `version`, `active`) and keeps the active ones whose CVE OVAL
document exists: a HEAD of `com.ubuntu.<codename>.cve.oval.xml`, following redirects, where
`Content-Location` names the file actually served (Canonical's server negotiates the `.bz2`)
and `Content-Type: application/x-bzip2` says it is compressed. `force: [{name, version}]`
adds series regardless of Launchpad, fetching their `.bz2` document. The series list is
fetched with its ETag, so an unchanged list reuses the previous discovery.

Each updater downloads its document under its ETag (the fingerprint), decompresses it in the
parse thread when bzip2 is used, and maps dpkginfo definitions through `_oval.dpkg`: name is
the definition title, severity text stays empty, the normalized severity is the advisory's
word when it is one of Clair's, and the distribution is the one the Ubuntu distribution
scanner reports for that release (`clair_common.distributions.ubuntu_distribution`).

Configuration: `updaters.config.ubuntu` takes `url` (Launchpad API base), `name`
(distribution name in that API), `force`, and, our addition for mirrors and tests,
`oval_url` (the directory holding the OVAL documents); `updaters.config.ubuntu/updater/<c>`
takes `url` and `use_bzip2`.
"""

from __future__ import annotations

import asyncio
import bz2
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

from clair_common.distributions import ubuntu_distribution
from clair_common.models import Vulnerability
from clair_matcher.updaters._conditional import CHUNK, conditional_download
from clair_matcher.updaters._config import (
    flag,
    read_config,
    setting,
    text,
    with_trailing_slash,
)
from clair_matcher.updaters._oval import OvalDocument, dpkg_vulnerabilities, issued_time, links
from clair_matcher.updaters.base import (
    ConfigProblem,
    FeedError,
    FetchResult,
    UnchangedType,
    Updater,
    UpdaterSetFactory,
)

log = logging.getLogger("clair.matcher.updaters.ubuntu")

DEFAULT_API = "https://api.launchpad.net/1.0/"
DEFAULT_NAME = "ubuntu"
DEFAULT_OVAL = "https://security-metadata.canonical.com/oval/"
BZIP2_TYPE = "application/x-bzip2"
# claircore ubuntu/parser.go: exact, case-sensitive.
SEVERITIES = frozenset({"Negligible", "Low", "Medium", "High", "Critical"})


def normalize_severity(severity: str) -> str:
    return severity if severity in SEVERITIES else "Unknown"


def document_name(codename: str) -> str:
    return f"com.ubuntu.{codename}.cve.oval.xml"


# -- the updater -------------------------------------------------------------------------------
def bunzip2(src: Path, dst: Path, where: str) -> None:
    """Decompresses (possibly multi-stream) bzip2 `src` into `dst`; FeedError if it is cut
    short or corrupt, naming the compressed byte offset."""
    decoder = bz2.BZ2Decompressor()
    offset = 0
    fresh = True  # at a stream boundary: the input may end here
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            data = chunk
            while data:
                try:
                    fout.write(decoder.decompress(data))
                except (OSError, EOFError) as exc:
                    raise FeedError(
                        f"{where}: bzip2 data corrupt near byte {offset}: {exc}"
                    ) from None
                fresh = False
                if not decoder.eof:
                    break
                data = decoder.unused_data
                decoder, fresh = bz2.BZ2Decompressor(), True
            offset += len(chunk)
    if not fresh:
        raise FeedError(f"{where}: bzip2 stream truncated after {offset} bytes")


@dataclass(frozen=True, slots=True)
class UbuntuUpdaterConfig:
    """`updaters.config.ubuntu/updater/<codename>`: `url` (its document) and `use_bzip2`."""

    url: str = setting(text, "")
    use_bzip2: bool | None = setting(flag, None)


class UbuntuUpdater(Updater):
    version = "1"

    def __init__(self, codename: str, version: str, url: str, use_bzip2: bool) -> None:
        self.name = f"ubuntu/updater/{codename}"
        self.codename = codename
        self.url = url
        self.use_bzip2 = use_bzip2
        self.dist = ubuntu_distribution(version, codename)

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(UbuntuUpdaterConfig, config, self.name)
        if settings.url:
            self.url = settings.url
        if settings.use_bzip2 is not None:
            self.use_bzip2 = settings.use_bzip2

    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | UnchangedType:
        suffix = ".xml.bz2" if self.use_bzip2 else ".xml"
        return await conditional_download(
            client, self.url, prev_fingerprint, feed=self.name, suffix=suffix
        )

    def parse(self, fetched: FetchResult) -> Iterator[Vulnerability]:
        feed = f"{self.name} ({fetched.url})"
        if not self.use_bzip2:
            yield from self._records(OvalDocument(fetched.path, feed))
            return
        fd, name = tempfile.mkstemp(prefix="clair-oval-", suffix=".xml")
        os.close(fd)
        plain = Path(name)
        try:
            bunzip2(fetched.path, plain, feed)
            yield from self._records(OvalDocument(plain, feed))
        finally:
            plain.unlink(missing_ok=True)

    def _records(self, doc: OvalDocument) -> Iterator[Vulnerability]:
        for defn in doc.definitions():
            severity = defn.advisory.severity
            proto = Vulnerability(
                updater=self.name,
                name=defn.title,
                description=defn.description,
                issued=issued_time(defn.advisory.issued),
                links=links(defn),
                normalized_severity=normalize_severity(severity),
                distribution=self.dist,
            )
            yield from dpkg_vulnerabilities(doc, defn, [proto])


# -- series discovery --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Series:
    codename: str
    version: str
    url: str
    use_bzip2: bool

    def updater(self) -> UbuntuUpdater:
        return UbuntuUpdater(self.codename, self.version, self.url, self.use_bzip2)


def active_series(doc: object, where: str) -> list[tuple[str, str]]:
    """(codename, version) of every active entry of a Launchpad series collection."""
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise FeedError(f"{where}: expected an object with an `entries` list")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise FeedError(f"{where}: entries[{i}]: expected an object")
        name, version = entry.get("name"), entry.get("version")
        if entry.get("active") is not True:
            continue
        if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
            raise FeedError(f"{where}: entries[{i}]: active series without name and version")
        out.append((name, version))
    return out


def _forced(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    value = value or []
    problem = ConfigProblem(f"{where}: expected a list of {{name, version}}")
    if not isinstance(value, list):
        raise problem
    out = []
    for item in value:
        if not isinstance(item, Mapping):
            raise problem
        name, version = item.get("name"), item.get("version")
        if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
            raise problem
        out.append((name, version))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class UbuntuConfig:
    """`updaters.config.ubuntu`: `url` (Launchpad API base), `name` (the distribution there),
    `oval_url` (the OVAL directory) and `force` (series to add, `[{name, version}]`)."""

    url: str = setting(text, "")
    name: str = setting(text, "")
    oval_url: str = setting(text, "")
    force: tuple[tuple[str, str], ...] = setting(_forced, ())


class UbuntuFactory(UpdaterSetFactory):
    name = "ubuntu"

    def __init__(self) -> None:
        self.api = urljoin(DEFAULT_API, f"{DEFAULT_NAME}/series")
        self.oval_base = DEFAULT_OVAL
        self.force: list[tuple[str, str]] = []
        self._etag = ""
        self._series: list[Series] = []

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(UbuntuConfig, config, self.name)
        api = with_trailing_slash(settings.url or DEFAULT_API)
        self.api = urljoin(api, f"{settings.name or DEFAULT_NAME}/series")
        oval = settings.oval_url
        self.oval_base = with_trailing_slash(oval) if oval else DEFAULT_OVAL
        self.force = list(settings.force)
        self._etag, self._series = "", []

    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]:
        try:
            series = await self._discover(client)
        except aiohttp.ClientError as exc:
            raise FeedError(f"ubuntu: series discovery: {exc or type(exc).__name__}") from exc
        found = {s.codename for s in series}
        forced = [
            Series(name, version, urljoin(self.oval_base, document_name(name) + ".bz2"), True)
            for name, version in self.force
            if name not in found
        ]
        return [s.updater() for s in [*series, *forced]]

    async def _discover(self, client: aiohttp.ClientSession) -> list[Series]:
        headers = {"If-None-Match": self._etag} if self._etag else {}
        async with client.get(self.api, headers=headers) as resp:
            if resp.status == 304 and self._etag:
                return self._series
            if resp.status != 200:
                raise FeedError(f"ubuntu: GET {self.api}: unexpected status {resp.status}")
            etag = resp.headers.get("ETag", "")
            try:
                doc = await resp.json(content_type=None)
            except ValueError as exc:
                raise FeedError(f"ubuntu: GET {self.api}: not JSON: {exc}") from None
        wanted = active_series(doc, f"ubuntu: {self.api}")
        probed = await asyncio.gather(*(self._probe(client, n, v) for n, v in wanted))
        series = [s for s in probed if s is not None]
        log.info("ubuntu: series %s", ", ".join(s.codename for s in series) or "none")
        self._etag, self._series = etag, series
        return series

    async def _probe(
        self, client: aiohttp.ClientSession, codename: str, version: str
    ) -> Series | None:
        """The series' document as the server names it, or None when it has none."""
        url = urljoin(self.oval_base, document_name(codename))
        async with client.head(url, allow_redirects=True) as resp:
            if resp.status == 404:
                log.info("ubuntu: %s has no OVAL document (%s); skipped", codename, url)
                return None
            if resp.status != 200:
                raise FeedError(f"ubuntu: HEAD {url}: unexpected status {resp.status}")
            final = str(resp.url)
            location = resp.headers.get("Content-Location", "")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        resolved = urljoin(final, location) if location else final
        use_bzip2 = content_type == BZIP2_TYPE or resolved.endswith(".bz2")
        return Series(codename, version, resolved, use_bzip2)
