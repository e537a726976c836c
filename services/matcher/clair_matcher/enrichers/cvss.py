"""The CVSS enricher `clair.cvss` (claircore `enricher/cvss/`): NVD's CVSS v3 data per CVE.

Feed: NVD's yearly JSON 2.0 files under a root (config `feed_root`, ending in `/`). Every run
GETs `nvdcve-2.0-<year>.meta` for each year from 2002 to now; the fingerprint is the JSON map
year → upper-case sha256 from those files. When any year changed, every year's
`nvdcve-2.0-<year>.json.gz` is downloaded and streamed: Rejected CVEs are skipped, and the first
Primary CVSS v3.1 metric (else v3.0) gives one record `{tags: [CVE id], data: cvssData}`.

At match time the CVE ids named by each reported vulnerability's `name` and `links` are looked
up together, and the report gets `{<vuln id>: [cvssData, ...]}` under Clair's media type.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urljoin

import aiohttp
import orjson

from clair_common.models import VulnerabilityReport
from clair_matcher.enrichers.base import Enricher, EnrichmentLookup, EnrichmentRecord
from clair_matcher.enrichers.cvemap import enrich_by_cve
from clair_matcher.updaters._conditional import CHUNK
from clair_matcher.updaters._config import read_config, setting, url_ending
from clair_matcher.updaters._stream_json import iter_array_items
from clair_matcher.updaters.base import (
    ConfigProblem,
    FeedError,
    FetchResult,
    Unchanged,
    UnchangedType,
)

DEFAULT_FEED_ROOT = "https://nvd.nist.gov/feeds/json/cve/2.0/"
FIRST_YEAR = 2002
MEDIA_TYPE = (
    "message/vnd.clair.map.vulnerability; enricher=clair.cvss"
    " schema=https://csrc.nist.gov/schema/nvd/api/2.0/cve_api_json_2.0.schema"
)
# NVD's CVE id pattern, relaxed as Clair has it: any case, dashes or underscores.
# Metric lists in order of preference; only NVD's own ("Primary") scores are kept.
_METRICS = ("cvssMetricV31", "cvssMetricV30")


@dataclass(slots=True)
class YearFeeds(FetchResult):
    """The downloaded year files, in a temporary directory (`path`)."""

    files: list[tuple[int, Path, str]] = field(default_factory=list)  # year, file, URL

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def parse_meta(text: str, where: str) -> str:
    """The sha256 of a `.meta` file (`key:value` lines)."""
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key == "sha256" and value.strip():
            return value.strip()
    raise FeedError(f"{where}: no sha256 line")


def _year_map(fingerprint: str) -> dict[str, str]:
    """A previous fingerprint's map; anything unreadable counts as no previous data."""
    try:
        value = orjson.loads(fingerprint) if fingerprint else {}
    except orjson.JSONDecodeError:
        return {}
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def cvss_record(item: Any, where: str) -> EnrichmentRecord | None:
    """The record of one `vulnerabilities[]` item; None when rejected or without v3 data."""
    cve = item.get("cve") if isinstance(item, dict) else None
    if not isinstance(cve, dict) or not isinstance(cve.get("id"), str):
        raise FeedError(f"{where}: expected an object with a 'cve' object holding an 'id'")
    if cve.get("vulnStatus") == "Rejected":
        return None
    metrics = cve.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise FeedError(f"{where}.cve.metrics: expected an object")
    for key in _METRICS:
        for metric in metrics.get(key) or []:
            if not isinstance(metric, dict) or metric.get("type") != "Primary":
                continue
            data = metric.get("cvssData")
            if isinstance(data, dict):
                return EnrichmentRecord([cve["id"]], data)
    return None


def _year(value: Any, where: str) -> int | None:
    """A year from FIRST_YEAR; null is "not set"."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < FIRST_YEAR:
        raise ConfigProblem(f"{where}: expected a year from {FIRST_YEAR}")
    return value


@dataclass(frozen=True, slots=True)
class CvssConfig:
    """`updaters.config.clair.cvss`: `feed_root` (ending in `/`), and the years to read."""

    feed_root: str = setting(url_ending("/", "URL missing trailing slash:"), "")
    first_year: int | None = setting(_year, None)
    last_year: int | None = setting(_year, None)


class CvssEnricher(Enricher):
    name = "clair.cvss"
    media_type = MEDIA_TYPE
    version = "1"

    def __init__(self) -> None:
        self.feed_root = DEFAULT_FEED_ROOT
        # Clair always reads 2002..now; a narrower span serves tests and local mirrors.
        self.first_year = FIRST_YEAR
        self.last_year: int | None = None

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(CvssConfig, config, self.name)
        if settings.feed_root:
            self.feed_root = settings.feed_root
        self.first_year = settings.first_year or FIRST_YEAR
        self.last_year = settings.last_year

    def years(self) -> range:
        last = self.last_year if self.last_year is not None else datetime.now(UTC).year
        return range(self.first_year, last + 1)

    # -- updater -----------------------------------------------------------------------------
    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | UnchangedType:
        try:
            current: dict[str, str] = {}
            for year in self.years():
                url = urljoin(self.feed_root, f"nvdcve-2.0-{year}.meta")
                async with client.get(url) as resp:
                    if resp.status != 200:
                        raise FeedError(f"{self.name}: GET {url}: unexpected status {resp.status}")
                    text = await resp.text()
                current[str(year)] = parse_meta(text, f"{self.name} ({url})").upper()
            previous = _year_map(prev_fingerprint)
            if previous and all(previous.get(y) == sha for y, sha in current.items()):
                return Unchanged
            fingerprint = orjson.dumps(current, option=orjson.OPT_SORT_KEYS).decode()
            return await self._download(client, fingerprint)
        except aiohttp.ClientError as exc:
            raise FeedError(f"{self.name}: {exc or type(exc).__name__}") from exc

    async def _download(self, client: aiohttp.ClientSession, fingerprint: str) -> YearFeeds:
        directory = Path(tempfile.mkdtemp(prefix="clair-cvss-"))
        out = YearFeeds(path=directory, fingerprint=fingerprint, url=self.feed_root)
        try:
            for year in self.years():
                url = urljoin(self.feed_root, f"nvdcve-2.0-{year}.json.gz")
                target = directory / f"{year}.json.gz"
                async with client.get(url) as resp:
                    if resp.status != 200:
                        raise FeedError(f"{self.name}: GET {url}: unexpected status {resp.status}")
                    with target.open("wb") as fp:
                        async for chunk in resp.content.iter_chunked(CHUNK):
                            fp.write(chunk)
                out.files.append((year, target, url))
        except BaseException:
            out.discard()
            raise
        return out

    def parse(self, fetched: FetchResult) -> Iterator[EnrichmentRecord]:
        files = fetched.files if isinstance(fetched, YearFeeds) else [(0, fetched.path, "")]
        for _year, path, url in files:
            feed = f"{self.name} ({url or fetched.url})"
            try:
                with gzip.open(path, "rb") as gz:
                    fp = cast("IO[bytes]", gz)
                    for index, item in iter_array_items(fp, "vulnerabilities", feed=feed):
                        record = cvss_record(item, f"{feed}: vulnerabilities[{index}]")
                        if record is not None:
                            yield record
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise FeedError(f"{feed}: broken gzip stream: {exc}") from None

    # -- match time --------------------------------------------------------------------------
    async def enrich(self, lookup: EnrichmentLookup, report: VulnerabilityReport) -> list[Any]:
        # Clair's CVSS enricher reads names and links only, not descriptions.
        return await enrich_by_cve(self.name, lookup, report, lambda v: (v.name, v.links))
