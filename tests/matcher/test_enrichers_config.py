"""Typed `updaters.config.<enricher>` blocks, read as the updaters' are: a bad value names the
enricher and key; a key the block does not declare is ignored with one warning."""

from __future__ import annotations

import dataclasses
import logging
import uuid

import pytest

from clair_matcher.enrichers import ENRICHMENT_SETS, build_enrichers
from clair_matcher.enrichers.cvss import CvssConfig
from clair_matcher.enrichers.epss import EpssConfig
from clair_matcher.enrichers.kev import KevConfig, KevEnricher
from clair_matcher.updaters import ConfigProblem

LOGGER = "clair.matcher.updaters"


@pytest.mark.parametrize("name", sorted(ENRICHMENT_SETS))
def test_every_enricher_ignores_an_unknown_key_with_one_warning(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = f"no_such_key_{uuid.uuid4().hex[:8]}"  # warnings are once per process and key
    with caplog.at_level(logging.WARNING, LOGGER):
        enrichers, problems = build_enrichers([name], {name: {key: "x"}})
        ENRICHMENT_SETS[name]().configure({key: "y"})  # discovery reads the blocks every run
    assert problems == {}
    assert [e.name for e in enrichers] == [name]
    warned = [r.getMessage() for r in caplog.records if key in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].startswith(f"updaters.config.{name}.{key}: unknown key ignored (known: ")


@pytest.mark.parametrize("name", sorted(ENRICHMENT_SETS))
def test_every_enricher_refuses_an_ill_typed_feed_root_naming_block_and_key(name: str) -> None:
    enrichers, problems = build_enrichers([name], {name: {"feed_root": 5}})
    assert enrichers == []
    assert problems[name].startswith(f"updaters.config.{name}.feed_root: expected a string")


@pytest.mark.parametrize(
    ("name", "key", "url", "problem"),
    [
        ("clair.cvss", "feed_root", "http://m/nvd", "URL missing trailing slash: 'http://m/nvd'"),
        (
            "clair.epss",
            "feed_root",
            "http://m/e.csv",
            "expected a '.gz' file, got 'http://m/e.csv'",
        ),
        ("clair.kev", "feed_root", "http://m/kev", "URL not pointing to JSON: 'http://m/kev'"),
        ("clair.kev", "feed", "http://m/kev", "URL not pointing to JSON: 'http://m/kev'"),
    ],
)
def test_every_enricher_refuses_a_feed_of_the_wrong_kind_naming_block_and_key(
    name: str, key: str, url: str, problem: str
) -> None:
    enrichers, problems = build_enrichers([name], {name: {key: url}})
    assert enrichers == []
    assert problems[name] == f"updaters.config.{name}.{key}: {problem}"


@pytest.mark.parametrize("key", ["first_year", "last_year"])
def test_cvss_refuses_a_year_that_is_not_one(key: str) -> None:
    with pytest.raises(ConfigProblem, match=rf"^updaters\.config\.clair\.cvss\.{key}: "):
        ENRICHMENT_SETS["clair.cvss"]().configure({key: "2017"})


def test_kev_reads_both_of_its_keys_without_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, LOGGER):
        enrichers, problems = build_enrichers(
            ["clair.kev"], {"clair.kev": {"feed": "http://m/kev.json", "feed_root": None}}
        )
    assert problems == {} and caplog.records == []
    assert isinstance(enrichers[0], KevEnricher)
    assert enrichers[0].feed == "http://m/kev.json"


@pytest.mark.parametrize("kind", [CvssConfig, EpssConfig, KevConfig])
def test_enricher_blocks_are_frozen_dataclasses(
    kind: type[CvssConfig | EpssConfig | KevConfig],
) -> None:
    settings = kind()
    assert dataclasses.is_dataclass(settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.feed_root = "http://elsewhere/"  # type: ignore[misc]
