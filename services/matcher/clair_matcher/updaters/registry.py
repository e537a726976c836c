"""Set name → factory, and building the enabled updaters from the `updaters` config section.

`updaters.config.<set name>` configures a set's factory, `updaters.config.<updater name>` one
updater (clair-api.md 3.2 / 7.2). Set names without an implementation yet are skipped with a
log line, so Clair's default list can stay the default.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from clair_common.errors import one_line
from clair_matcher.updaters.alpine import AlpineFactory
from clair_matcher.updaters.aws import AwsFactory
from clair_matcher.updaters.base import ConfigProblem, Updater, UpdaterSetFactory
from clair_matcher.updaters.debian import DebianFactory
from clair_matcher.updaters.oracle import OracleFactory
from clair_matcher.updaters.osv import OsvFactory
from clair_matcher.updaters.photon import PhotonFactory
from clair_matcher.updaters.rhel_vex import RhelVexFactory
from clair_matcher.updaters.suse import SuseFactory
from clair_matcher.updaters.ubuntu import UbuntuFactory

log = logging.getLogger("clair.matcher.updaters")

FactoryBuilder = Callable[[], UpdaterSetFactory]

_FACTORIES: dict[str, FactoryBuilder] = {
    "alpine": AlpineFactory,
    "aws": AwsFactory,
    "debian": DebianFactory,
    "oracle": OracleFactory,
    "osv": OsvFactory,
    "photon": PhotonFactory,
    "rhel-vex": RhelVexFactory,
    "suse": SuseFactory,
    "ubuntu": UbuntuFactory,
}


def register(set_name: str, builder: FactoryBuilder) -> None:
    """Makes a set available under `updaters.sets`; used by feed modules added later."""
    _FACTORIES[set_name] = builder


def known_sets() -> list[str]:
    return sorted(_FACTORIES)


def _section(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = config.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigProblem(f"updaters.config.{key}: expected an object")
    return value


def build_factories(
    sets: Sequence[str], config: Mapping[str, Any]
) -> tuple[list[UpdaterSetFactory], dict[str, str]]:
    """Configured factories for the selected sets, and set name → reason for those that
    could not be configured."""
    factories: list[UpdaterSetFactory] = []
    problems: dict[str, str] = {}
    for name in dict.fromkeys(sets):
        builder = _FACTORIES.get(name)
        if builder is None:
            log.info("updater set %s is not implemented; skipped", name)
            continue
        factory = builder()
        try:
            factory.configure(_section(config, name))
        except ConfigProblem as exc:
            problems[name] = str(exc)
            continue
        factories.append(factory)
    return factories, problems


@dataclass(slots=True)
class Discovery:
    updaters: list[Updater] = field(default_factory=list)
    # set or updater name → one-line reason
    errors: dict[str, str] = field(default_factory=dict)
    # set name → the names of the updaters it discovered (sets that failed are absent)
    by_set: dict[str, list[str]] = field(default_factory=dict)


async def discover(
    factories: Sequence[UpdaterSetFactory],
    client: aiohttp.ClientSession,
    config: Mapping[str, Any],
) -> Discovery:
    """Runs every factory; a failing factory or updater config is reported, not raised."""
    out = Discovery()
    seen: set[str] = set()
    for factory in factories:
        try:
            updaters = await factory.updater_set(client)
        except Exception as exc:  # one broken set never stops the others
            out.errors[factory.name] = one_line(exc)
            continue
        out.by_set[factory.name] = [updater.name for updater in updaters]
        for updater in updaters:
            if updater.name in seen:
                continue
            seen.add(updater.name)
            try:
                updater.configure(_section(config, updater.name))
            except ConfigProblem as exc:
                out.errors[updater.name] = str(exc)
                continue
            out.updaters.append(updater)
    return out
