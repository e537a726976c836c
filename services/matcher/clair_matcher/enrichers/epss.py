"""The EPSS enricher `clair.epss` (claircore `enricher/epss/`): exploit prediction per CVE.

Feed: FIRST's daily `epss_scores-YYYY-MM-DD.csv.gz` (today's date, UTC, under
`https://epss.cyentia.com/`), or the `.gz` URL in config `feed_root` (a mirror). Conditional
fetch on the ETag (Last-Modified when a mirror sends none). The gzip'd CSV starts with a
`#model_version:...,score_date:...` line, then the header `cve,epss,percentile`; each row
becomes one record tagged with its CVE, in claircore's `EPSSItem` shape:

    {"modelVersion": "v2023.03.01", "date": "2024-10-25T00:00:00+0000", "cve": "CVE-...",
     "epss": 0.91963, "percentile": 0.9903}

Rows with a wrong field count or a number that does not parse are skipped and counted, as
claircore does; a missing metadata line or header fails the run. At match time: as clair.kev.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from clair_common.models import VulnerabilityReport
from clair_matcher.enrichers.base import Enricher, EnrichmentLookup, EnrichmentRecord
from clair_matcher.enrichers.cvemap import enrich_by_cve
from clair_matcher.updaters._conditional import conditional_download
from clair_matcher.updaters._config import read_config, setting, url_ending
from clair_matcher.updaters.base import (
    FeedError,
    FetchResult,
    UnchangedType,
)

log = logging.getLogger("clair.matcher.enrichers.epss")

DEFAULT_FEED_ROOT = "https://epss.cyentia.com/"
MEDIA_TYPE = (
    "message/vnd.clair.map.vulnerability; enricher=clair.epss"
    " schema=https://csrc.nist.gov/schema/nvd/feed/1.1/cvss-v3.x.json"
)


def current_feed_url(now: datetime | None = None) -> str:
    day = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    return f"{DEFAULT_FEED_ROOT}epss_scores-{day}.csv.gz"


def _metadata(first: list[str], where: str) -> tuple[str, str]:
    model, date = "", ""
    for field in first:
        key, sep, value = field.strip().removeprefix("#").partition(":")
        if not sep:
            continue
        if key.strip() == "model_version":
            model = value.strip()
        elif key.strip() == "score_date":
            date = value.strip()
    if not model or not date:
        raise FeedError(
            f"{where}: line 1: expected '#model_version:...,score_date:...', got {first!r}"
        )
    return model, date


def _score(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def epss_records(lines: Iterator[str], where: str) -> Iterator[EnrichmentRecord]:
    """Records of the CSV `lines`; FeedError for a missing metadata line or header."""
    reader = csv.reader(lines)
    first = next(reader, None)
    if first is None:
        raise FeedError(f"{where}: empty file")
    model, date = _metadata(first, where)
    header = next((row for row in reader if row and not row[0].startswith("#")), None)
    if header is None or header[:3] != ["cve", "epss", "percentile"]:
        raise FeedError(f"{where}: line 2: expected the header 'cve,epss,percentile', got {header}")
    skipped: list[int] = []
    for row in reader:
        if not row or row[0].startswith("#"):
            continue
        try:
            if len(row) != len(header) or not row[0]:
                raise ValueError("field count")
            fields = dict(zip(header, row, strict=True))
            epss, percentile = _score(fields["epss"]), _score(fields["percentile"])
        except ValueError:
            skipped.append(reader.line_num)
            continue
        item = {
            "modelVersion": model,
            "date": date,
            "cve": row[0],
            "epss": epss,
            "percentile": percentile,
        }
        yield EnrichmentRecord([row[0]], item)
    if skipped:
        log.warning(
            "%s: skipped %d malformed rows (first at line %d)", where, len(skipped), skipped[0]
        )


@dataclass(frozen=True, slots=True)
class EpssConfig:
    """`updaters.config.clair.epss`: `feed_root`, one `.gz` file instead of today's."""

    feed_root: str = setting(url_ending(".gz", "expected a '.gz' file, got"), "")


class EpssEnricher(Enricher):
    name = "clair.epss"
    media_type = MEDIA_TYPE
    version = "1"

    def __init__(self) -> None:
        self.feed: str | None = None  # None: today's file, decided at each fetch

    def configure(self, config: Mapping[str, Any]) -> None:
        feed = read_config(EpssConfig, config, self.name).feed_root
        if feed:
            self.feed = feed

    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | UnchangedType:
        url = self.feed or current_feed_url()
        return await conditional_download(
            client, url, prev_fingerprint, feed=self.name, suffix=".csv.gz"
        )

    def parse(self, fetched: FetchResult) -> Iterator[EnrichmentRecord]:
        where = f"{self.name} ({fetched.url})"
        try:
            with (
                gzip.open(fetched.path, "rb") as raw,
                io.TextIOWrapper(raw, encoding="utf-8", newline="") as text,
            ):
                yield from epss_records(text, where)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise FeedError(f"{where}: broken gzip stream: {exc}") from None
        except UnicodeDecodeError as exc:
            raise FeedError(f"{where}: not UTF-8 text: {exc}") from None
        except csv.Error as exc:
            raise FeedError(f"{where}: malformed CSV: {exc}") from None

    async def enrich(self, lookup: EnrichmentLookup, report: VulnerabilityReport) -> list[Any]:
        return await enrich_by_cve(self.name, lookup, report)
