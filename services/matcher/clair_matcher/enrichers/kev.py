"""The CISA Known Exploited Vulnerabilities enricher `clair.kev` (claircore `enricher/kev/`).

Feed: CISA's catalog JSON (config `feed_root`, or `feed` as claircore's YAML spells it; must
end in `.json`, so a mirror's copy works). Fetched with If-Modified-Since, the fingerprint is
the response's Last-Modified, as claircore does (CISA's server ignores If-None-Match). One
record per catalog entry, tagged with its CVE id, in claircore's `kev.Entry` shape:

    {"cve", "vulnerability_name", "catalog_version", "date_added", "short_description",
     "required_action", "due_date", "known_ransomware_campaign_use"}

At match time every CVE named by a reported vulnerability (description, name, links: OSV
aliases included) is looked up, and the report gets `{<vuln id>: [entry, ...]}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from clair_common.models import VulnerabilityReport
from clair_matcher.enrichers.base import Enricher, EnrichmentLookup, EnrichmentRecord
from clair_matcher.enrichers.cvemap import enrich_by_cve
from clair_matcher.updaters._conditional import (
    conditional_download,
    if_modified_since,
    last_modified,
)
from clair_matcher.updaters._config import read_config, setting, url_ending
from clair_matcher.updaters.base import (
    FeedError,
    FetchResult,
    UnchangedType,
)

DEFAULT_FEED = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
MEDIA_TYPE = (
    "message/vnd.clair.map.vulnerability; enricher=clair.kev"
    " schema=https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities_schema.json"
)
# Catalog field → claircore's Entry key; every one is a string (empty when absent).
_FIELDS = (
    ("cveID", "cve"),
    ("vulnerabilityName", "vulnerability_name"),
    ("dateAdded", "date_added"),
    ("shortDescription", "short_description"),
    ("requiredAction", "required_action"),
    ("dueDate", "due_date"),
    ("knownRansomwareCampaignUse", "known_ransomware_campaign_use"),
)


def kev_records(doc: Any, where: str) -> Iterator[EnrichmentRecord]:
    """The records of a parsed catalog; FeedError names the first entry that is unusable."""
    if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
        raise FeedError(f"{where}: expected an object with a 'vulnerabilities' array")
    catalog = doc.get("catalogVersion", "")
    if not isinstance(catalog, str):
        raise FeedError(f"{where}: catalogVersion: expected a string")
    for index, vuln in enumerate(doc["vulnerabilities"]):
        at = f"{where}: vulnerabilities[{index}]"
        if not isinstance(vuln, dict):
            raise FeedError(f"{at}: expected an object")
        values: dict[str, str] = {}
        for field, key in _FIELDS:
            value = vuln.get(field, "")
            if not isinstance(value, str):
                raise FeedError(f"{at}.{field}: expected a string")
            values[key] = value
        if not values["cve"]:
            raise FeedError(f"{at}.cveID: missing")
        entry = {
            "cve": values["cve"],
            "vulnerability_name": values["vulnerability_name"],
            "catalog_version": catalog,
            "date_added": values["date_added"],
            "short_description": values["short_description"],
            "required_action": values["required_action"],
            "due_date": values["due_date"],
            "known_ransomware_campaign_use": values["known_ransomware_campaign_use"],
        }
        yield EnrichmentRecord([values["cve"]], entry)


_json_url = url_ending(".json", "URL not pointing to JSON:")


@dataclass(frozen=True, slots=True)
class KevConfig:
    """`updaters.config.clair.kev`: `feed_root` (or Clair's older `feed`), the JSON file."""

    feed_root: str = setting(_json_url, "")
    feed: str = setting(_json_url, "")


class KevEnricher(Enricher):
    name = "clair.kev"
    media_type = MEDIA_TYPE
    version = "1"

    def __init__(self) -> None:
        self.feed = DEFAULT_FEED

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(KevConfig, config, self.name)
        feed = settings.feed_root or settings.feed
        if feed:
            self.feed = feed

    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | UnchangedType:
        return await conditional_download(
            client,
            self.feed,
            prev_fingerprint,
            feed=self.name,
            suffix=".json",
            conditional_headers=if_modified_since,
            fingerprint_of=last_modified,
        )

    def parse(self, fetched: FetchResult) -> Iterator[EnrichmentRecord]:
        where = f"{self.name} ({fetched.url})"
        try:
            doc = orjson.loads(fetched.path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise FeedError(f"{where}: invalid JSON: {exc}") from None
        yield from kev_records(doc, where)

    async def enrich(self, lookup: EnrichmentLookup, report: VulnerabilityReport) -> list[Any]:
        return await enrich_by_cve(self.name, lookup, report)
