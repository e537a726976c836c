"""Enrichers: extra data attached to vulnerability reports (see base.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clair_matcher.enrichers.base import Enricher, EnrichmentLookup, EnrichmentRecord
from clair_matcher.enrichers.cvss import CvssEnricher
from clair_matcher.enrichers.epss import EpssEnricher
from clair_matcher.enrichers.kev import KevEnricher
from clair_matcher.updaters.base import ConfigProblem

# Set name (as in `updaters.sets`) → builder; Clair registers each enricher as its own set.
ENRICHMENT_SETS: dict[str, Callable[[], Enricher]] = {
    CvssEnricher.name: CvssEnricher,
    KevEnricher.name: KevEnricher,
    EpssEnricher.name: EpssEnricher,
}


def default_enrichers() -> list[Enricher]:
    """The enrichers applied at match time unless `matcher.disable_enrichment`."""
    return [builder() for builder in ENRICHMENT_SETS.values()]


__all__ = [
    "ENRICHMENT_SETS",
    "CvssEnricher",
    "Enricher",
    "EnrichmentLookup",
    "EnrichmentRecord",
    "EpssEnricher",
    "KevEnricher",
    "build_enrichers",
    "default_enrichers",
]


def build_enrichers(
    sets: Sequence[str], config: Mapping[str, Any]
) -> tuple[list[Enricher], dict[str, str]]:
    """Configured enrichers for the enrichment sets among `sets` (`updaters.config.<name>`),
    and name → reason for those whose configuration is wrong."""
    enrichers: list[Enricher] = []
    problems: dict[str, str] = {}
    for name in dict.fromkeys(sets):
        builder = ENRICHMENT_SETS.get(name)
        if builder is None:
            continue
        enricher = builder()
        section = config.get(name) or {}
        try:
            if not isinstance(section, Mapping):
                raise ConfigProblem(f"updaters.config.{name}: expected an object")
            enricher.configure(section)
        except ConfigProblem as exc:
            problems[name] = str(exc)
            continue
        enrichers.append(enricher)
    return enrichers, problems
