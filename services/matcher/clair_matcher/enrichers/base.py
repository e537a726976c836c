"""Enrichers (clair-api.md 6.4): a feed kept like an updater's, and a step after matching.

An enricher is two things. As an updater of kind "enrichment" it fetches its feed when it
changed and parses it into records, each a JSON value with the tags it is looked up by; the
scheduler stores every snapshot as an update operation, as for vulnerabilities. At match time
it reads the records of its newest operation whose tags concern the report, in one query,
and returns what goes under its media type in the report's `enrichments`.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import aiohttp

from clair_common.models import VulnerabilityReport
from clair_matcher.updaters.base import FetchResult, UnchangedType


class EnrichmentRecord(NamedTuple):
    """Clair's driver.EnrichmentRecord: `data` is any JSON value, found by any of `tags`."""

    tags: list[str]
    data: Any


# (updater name, tags) → the records of the updater's newest operation sharing a tag.
EnrichmentLookup = Callable[[str, Sequence[str]], Awaitable[list[EnrichmentRecord]]]


class Enricher(abc.ABC):
    """Both halves of one enricher; `name` is its updater name and `version` is bumped when
    the records it produces change shape."""

    name: ClassVar[str]
    media_type: ClassVar[str]
    kind: ClassVar[str] = "enrichment"
    version: ClassVar[str] = "1"

    def configure(self, config: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Apply `updaters.config.<name>`; the default accepts nothing to configure."""

    @abc.abstractmethod
    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | UnchangedType: ...

    @abc.abstractmethod
    def parse(self, fetched: FetchResult) -> Iterator[EnrichmentRecord]:
        """Yields records one at a time; runs in a worker thread, like Updater.parse."""

    @abc.abstractmethod
    async def enrich(self, lookup: EnrichmentLookup, report: VulnerabilityReport) -> list[Any]:
        """The values for `enrichments[media_type]`; an empty list adds nothing."""
