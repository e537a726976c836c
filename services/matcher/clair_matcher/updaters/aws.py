"""Amazon Linux ALAS (claircore `aws/`): one updater per release, `aws-<AL1|AL2|AL2023>-updater`.

A run GETs the release's mirror list, then `repodata/repomd.xml` from the first mirror that
answers with a parsable one. The `updateinfo` entry's checksum is the fingerprint: when it
equals the previous one nothing else is fetched. Otherwise the updateinfo document
(`repodata/updateinfo.xml.gz`) is downloaded, checked against that checksum, and parsed as a
stream: each (update, package) pair becomes one vulnerability named by the ALAS id, for the binary
package and arch, fixed in `epoch:version-release` (no epoch when it is 0).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urljoin

import aiohttp

from clair_common.distributions import amazon_linux_distribution
from clair_common.models import Distribution, Package, Vulnerability, format_time
from clair_matcher.updaters._conditional import CHUNK
from clair_matcher.updaters._config import (
    read_config,
    setting,
    text,
    texts,
    with_trailing_slash,
)
from clair_matcher.updaters.base import (
    FeedError,
    FetchResult,
    Unchanged,
    UnchangedType,
    Updater,
    UpdaterSetFactory,
)

log = logging.getLogger("clair.matcher.updaters.aws")

ARCH_OP = "equals"
UPDATEINFO_TYPE = "updateinfo"
DEFAULT_UPDATEINFO = "repodata/updateinfo.xml.gz"
REPOMD_PATH = "repodata/repomd.xml"
# claircore aws/normalizeseverity.go: an exact, case-sensitive table ("Important" → Unknown).
SEVERITIES = {"low": "Low", "medium": "Medium", "important": "High", "critical": "Critical"}
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
_DIGESTS = {"sha": "sha1", "sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}


@dataclass(frozen=True, slots=True)
class Release:
    label: str  # AL1, AL2, AL2023
    mirror_list: str  # Amazon's URL
    relative_list: str  # the same path under a configured `url` base
    dist: Distribution


RELEASES = (
    Release(
        "AL1",
        "http://repo.us-west-2.amazonaws.com/2018.03/updates/x86_64/mirror.list",
        "2018.03/updates/x86_64/mirror.list",
        amazon_linux_distribution("2018.03"),
    ),
    Release(
        "AL2",
        "https://cdn.amazonlinux.com/2/core/latest/x86_64/mirror.list",
        "2/core/latest/x86_64/mirror.list",
        amazon_linux_distribution("2"),
    ),
    Release(
        "AL2023",
        "https://cdn.amazonlinux.com/al2023/core/mirrors/latest/x86_64/mirror.list",
        "al2023/core/mirrors/latest/x86_64/mirror.list",
        amazon_linux_distribution("2023"),
    ),
)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


@dataclass(frozen=True, slots=True)
class UpdateInfoEntry:
    """repomd.xml's `updateinfo` data element."""

    checksum: str
    checksum_type: str
    location: str


def parse_repomd(data: bytes, where: str) -> UpdateInfoEntry:
    """The updateinfo entry of a repomd.xml document; FeedError when absent or malformed."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line, column = exc.position
        raise FeedError(f"{where}: malformed XML at line {line}, column {column}") from None
    for data_el in root:
        if _local(data_el.tag) != "data" or data_el.get("type") != UPDATEINFO_TYPE:
            continue
        checksum, kind, location = "", "", ""
        for child in data_el:
            name = _local(child.tag)
            if name == "checksum":
                checksum, kind = (child.text or "").strip(), child.get("type", "")
            elif name == "location":
                location = child.get("href", "")
        if not checksum:
            raise FeedError(f"{where}: the updateinfo entry has no checksum")
        return UpdateInfoEntry(checksum, kind, location or DEFAULT_UPDATEINFO)
    raise FeedError(f"{where}: no updateinfo entry")


def parse_mirror_list(text: str, base: str) -> list[str]:
    """One mirror URL a line (relative ones resolved against the list's own URL)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(with_trailing_slash(urljoin(base, line)))
    return out


def fixed_version(epoch: str, version: str, release: str) -> str:
    prefix = f"{epoch}:" if epoch not in ("", "0") else ""
    return f"{prefix}{version}-{release}"


def _issued(value: str | None, where: str) -> str:
    if not value:
        return format_time(None)
    for fmt in _DATE_FORMATS:
        try:
            return format_time(datetime.strptime(value, fmt).replace(tzinfo=UTC))
        except ValueError:
            continue
    raise FeedError(f"{where}: issued date {value!r} is not 'YYYY-MM-DD HH:MM[:SS]'")


@dataclass(frozen=True, slots=True)
class AwsConfig:
    """`updaters.config.aws`: `url`, a base every release's mirror list moves under."""

    url: str = setting(text, "")


@dataclass(frozen=True, slots=True)
class AwsUpdaterConfig:
    """`updaters.config.aws-<release>-updater`: `mirror_list` (its URL), or `mirrors` (the
    repository bases to use instead of the list's)."""

    mirror_list: str = setting(text, "")
    mirrors: tuple[str, ...] = setting(texts, ())


class AwsUpdater(Updater):
    version = "1"

    def __init__(self, release: Release, mirror_list: str | None = None) -> None:
        self.release = release
        self.name = f"aws-{release.label}-updater"
        self.mirror_list = mirror_list or release.mirror_list
        self.mirrors: list[str] = []  # configured mirrors replace the mirror list

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(AwsUpdaterConfig, config, self.name)
        if settings.mirror_list:
            self.mirror_list = settings.mirror_list
        if settings.mirrors:
            self.mirrors = [with_trailing_slash(m) for m in settings.mirrors]

    async def _mirrors(self, client: aiohttp.ClientSession) -> list[str]:
        if self.mirrors:
            return list(self.mirrors)
        url = self.mirror_list
        async with client.get(url) as resp:
            if resp.status != 200:
                raise FeedError(f"{self.name}: GET {url}: unexpected status {resp.status}")
            text = await resp.text()
        mirrors = parse_mirror_list(text, url)
        if not mirrors:
            raise FeedError(f"{self.name}: GET {url}: the mirror list is empty")
        return mirrors

    async def _repomd(
        self, client: aiohttp.ClientSession, mirrors: Sequence[str]
    ) -> tuple[str, UpdateInfoEntry]:
        """The first mirror whose repomd.xml parses, and its updateinfo entry."""
        problems = []
        for mirror in mirrors:
            url = urljoin(mirror, REPOMD_PATH)
            try:
                async with client.get(url) as resp:
                    if resp.status != 200:
                        problems.append(f"GET {url}: status {resp.status}")
                        continue
                    data = await resp.read()
                return mirror, parse_repomd(data, f"{self.name} ({url})")
            except (aiohttp.ClientError, FeedError) as exc:
                log.info("%s: mirror %s skipped: %s", self.name, mirror, exc)
                problems.append(str(exc) or type(exc).__name__)
        raise FeedError(f"{self.name}: no mirror answered: {'; '.join(problems)}")

    async def _download(
        self, client: aiohttp.ClientSession, url: str, entry: UpdateInfoEntry
    ) -> Path:
        """GET into a temporary file, verifying the repomd checksum on the way."""
        algorithm = _DIGESTS.get(entry.checksum_type.lower())
        digest = hashlib.new(algorithm) if algorithm else None
        fd, name = tempfile.mkstemp(prefix="clair-feed-", suffix=".xml.gz")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                async with client.get(url) as resp:
                    if resp.status != 200:
                        raise FeedError(f"{self.name}: GET {url}: unexpected status {resp.status}")
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        out.write(chunk)
                        if digest is not None:
                            digest.update(chunk)
            if digest is not None and digest.hexdigest() != entry.checksum.lower():
                raise FeedError(
                    f"{self.name}: GET {url}: {entry.checksum_type} {digest.hexdigest()}"
                    f" does not match repomd.xml's {entry.checksum}"
                )
        except BaseException:
            path.unlink(missing_ok=True)  # noqa: ASYNC240 - a quick local cleanup
            raise
        return path

    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | UnchangedType:
        try:
            mirrors = await self._mirrors(client)
            mirror, entry = await self._repomd(client, mirrors)
            if entry.checksum == prev_fingerprint:
                return Unchanged
            url = urljoin(mirror, entry.location)
            path = await self._download(client, url, entry)
        except aiohttp.ClientError as exc:
            raise FeedError(f"{self.name}: {exc or type(exc).__name__}") from exc
        return FetchResult(path=path, fingerprint=entry.checksum, url=url)

    def parse(self, fetched: FetchResult) -> Iterator[Vulnerability]:
        feed = f"{self.name} ({fetched.url})"
        for index, update in enumerate(_iter_updates(fetched.path, feed)):
            yield from self._update(update, f"{feed}: update[{index}]")

    def _update(self, update: ET.Element, where: str) -> Iterator[Vulnerability]:
        fields: dict[str, str] = {}
        issued: str | None = None
        links: list[str] = []
        packages: list[ET.Element] = []
        for child in update:
            name = _local(child.tag)
            if name in ("id", "description", "severity"):
                fields[name] = child.text or ""
            elif name == "issued":
                issued = child.get("date")
            elif name == "references":
                links.extend(r.get("href", "") for r in child if _local(r.tag) == "reference")
            elif name == "pkglist":
                for collection in child:
                    packages.extend(p for p in collection if _local(p.tag) == "package")
        alas_id = fields.get("id", "").strip()
        if not alas_id:
            raise FeedError(f"{where}: no <id>")
        where = f"{where} ({alas_id})"
        severity = fields.get("severity", "")
        proto = Vulnerability(
            updater=self.name,
            name=alas_id,
            description=fields.get("description", ""),
            issued=_issued(issued, where),
            links=" ".join(links),
            severity=severity,
            normalized_severity=SEVERITIES.get(severity, "Unknown"),
            distribution=self.release.dist,
            arch_op=ARCH_OP,
        )
        for pkg in packages:
            name = pkg.get("name", "")
            if not name:
                raise FeedError(f"{where}: a <package> has no name")
            yield replace(
                proto,
                package=Package(name=name, kind="binary", arch=pkg.get("arch", "")),
                fixed_in_version=fixed_version(
                    pkg.get("epoch", ""), pkg.get("version", ""), pkg.get("release", "")
                ),
            )


def _iter_updates(path: Path, feed: str) -> Iterator[ET.Element]:
    """Each `<update>` element of a gzipped updateinfo document, freed once consumed."""
    parser: ET.XMLPullParser[Any] = ET.XMLPullParser(events=("start", "end"))
    root: ET.Element | None = None
    depth = 0
    fed = 0
    with gzip.open(path, "rb") as fp:
        while True:
            try:
                chunk = fp.read(CHUNK)
            except (EOFError, OSError, zlib.error) as exc:
                raise FeedError(
                    f"{feed}: gzip stream broken after {fed} bytes of XML: {exc}"
                ) from None
            try:
                if chunk:
                    parser.feed(chunk)
                else:
                    parser.close()
                # Only start and end events were asked for: (event, element) pairs.
                events = cast("Iterator[tuple[str, Any]]", parser.read_events())
                for event, element in events:
                    if event == "start":
                        root = element if root is None else root
                        depth += 1
                        continue
                    depth -= 1
                    if depth == 1 and root is not None:
                        if _local(element.tag) == "update":
                            yield element
                        root.clear()  # drop finished children: memory stays bounded
            except ET.ParseError as exc:
                line, column = exc.position
                raise FeedError(f"{feed}: malformed XML at line {line}, column {column}") from None
            if not chunk:
                return
            fed += len(chunk)


class AwsFactory(UpdaterSetFactory):
    """The three releases; `updaters.config.aws.url` moves every mirror list under one base
    (e.g. a local copy), keeping the upstream paths."""

    name = "aws"

    def __init__(self) -> None:
        self.base = ""

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(AwsConfig, config, self.name)
        self.base = with_trailing_slash(settings.url) if settings.url else ""

    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]:
        return [
            AwsUpdater(r, urljoin(self.base, r.relative_list) if self.base else None)
            for r in RELEASES
        ]
