"""Typed `updaters.config.<name>` blocks: a bad value names its updater and key; a key the
block does not declare is ignored with one warning, as Clair (Go's encoding/json) ignores it."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from clair_matcher.updaters import ConfigProblem, Updater
from clair_matcher.updaters.alpine import AlpineUpdater, Release
from clair_matcher.updaters.aws import RELEASES, AwsUpdater
from clair_matcher.updaters.oracle import OracleUpdater
from clair_matcher.updaters.osv import OsvUpdater
from clair_matcher.updaters.registry import _FACTORIES, build_factories, known_sets
from clair_matcher.updaters.rhel_vex import RhelVexConfig, RhelVexFactory
from clair_matcher.updaters.ubuntu import UbuntuUpdater

UPDATERS: dict[str, Callable[[], Updater]] = {
    "alpine": lambda: AlpineUpdater(Release(3, 19), "main", "http://x/main.json"),
    "aws": lambda: AwsUpdater(RELEASES[0]),
    "oval": lambda: OracleUpdater(2021),
    "osv": lambda: OsvUpdater("pypi", "http://x/all.zip"),
    "ubuntu": lambda: UbuntuUpdater("noble", "24.04", "http://x/noble.xml", False),
}
LOGGER = "clair.matcher.updaters"


def _unknown_key() -> str:
    return f"no_such_key_{uuid.uuid4().hex[:8]}"  # warnings are once per process and key


@pytest.mark.parametrize("name", known_sets())
def test_every_set_refuses_an_ill_typed_url_naming_set_and_key(name: str) -> None:
    with pytest.raises(ConfigProblem, match=rf"^updaters\.config\.{name}\.url: "):
        _FACTORIES[name]().configure({"url": 5})
    factories, problems = build_factories([name], {name: {"url": 5}})
    assert factories == []
    assert problems[name].startswith(f"updaters.config.{name}.url: ")


@pytest.mark.parametrize("name", known_sets())
def test_every_set_ignores_an_unknown_key_with_one_warning(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = _unknown_key()
    with caplog.at_level(logging.WARNING, LOGGER):
        factories, problems = build_factories([name], {name: {key: "x"}})
        _FACTORIES[name]().configure({key: "y"})  # discovery reads the blocks every run
    assert problems == {}
    assert [f.name for f in factories] == [name]
    warned = [r.getMessage() for r in caplog.records if key in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].startswith(f"updaters.config.{name}.{key}: unknown key ignored (known: ")


@pytest.mark.parametrize("kind", sorted(UPDATERS))
def test_updaters_read_their_own_block(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    updater = UPDATERS[kind]()
    key = _unknown_key()
    with caplog.at_level(logging.WARNING, LOGGER):
        updater.configure({key: 1})
    assert f"updaters.config.{updater.name}.{key}: unknown key ignored" in caplog.text
    bad_key = "mirror_list" if kind == "aws" else "url"
    with pytest.raises(ConfigProblem, match=rf"updaters\.config\.{updater.name}\.{bad_key}: "):
        updater.configure({bad_key: ["not", "a", "string"]})


def test_the_rhel_vex_set_and_updater_share_one_block(caplog: pytest.LogCaptureFixture) -> None:
    block = {"url": "http://mirror.example/vex", "compressed_file_timeout": "90s"}
    with caplog.at_level(logging.WARNING, LOGGER):
        factory = RhelVexFactory()
        factory.configure(block)
        factory.updater.configure(block)  # discovery hands the updater the same block
    assert caplog.records == []  # neither warns about the other's keys
    assert factory.updater.url == "http://mirror.example/vex/"
    assert factory.updater.archive_timeout == timedelta(seconds=90)
    with pytest.raises(ConfigProblem, match=r"rhel-vex\.compressed_file_timeout: "):
        factory.configure({"compressed_file_timeout": "soon"})


def test_blocks_are_frozen_dataclasses() -> None:
    settings = RhelVexConfig()
    assert dataclasses.is_dataclass(settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.url = "http://elsewhere/"  # type: ignore[misc]
