"""Oracle Linux ELSA OVAL (claircore `oracle/`): one updater per year, `oracle-<year>-updater`.

Each year's document is `com.oracle.elsa-<year>.xml.bz2` under Oracle's OVAL directory. A
definition becomes one set of records per affected platform `Oracle Linux N` (with that
release's distribution, as the Oracle distribution scanner reports it); definitions naming no
such platform are skipped, and so are those whose affected CPEs are all `userspace_ksplice`
editions (ksplice user-space patches never apply inside containers). A CPE that cannot be read
keeps the definition, as Clair prefers false positives there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import aiohttp

from clair_common.distributions import oracle_distribution
from clair_common.models import Distribution, Vulnerability
from clair_common.vulnerable import cpe
from clair_matcher.updaters._config import read_config, setting, text, with_trailing_slash
from clair_matcher.updaters._oval import Definition, OvalRpmUpdater, proto_vulnerability
from clair_matcher.updaters.base import ConfigProblem, Updater, UpdaterSetFactory

log = logging.getLogger("clair.matcher.updaters.oracle")

DEFAULT_URL = "https://linux.oracle.com/security/oval/"
FIRST_YEAR = 2007
KSPLICE_EDITION = "userspace_ksplice"
_EDITION = 5  # index of the edition attribute in a CPE
_PLATFORM = re.compile(r"Oracle Linux (\d+)")
# claircore oracle/normalizeseverity.go: exact, case-sensitive.
SEVERITIES = {
    "N/A": "Unknown",
    "LOW": "Low",
    "MODERATE": "Medium",
    "IMPORTANT": "High",
    "CRITICAL": "Critical",
}


def normalize_severity(severity: str) -> str:
    return SEVERITIES.get(severity, "Unknown")


def platform_distribution(platform: str) -> Distribution | None:
    match = _PLATFORM.fullmatch(platform.strip())
    return oracle_distribution(match[1]) if match else None


def only_ksplice(cpes: Sequence[str]) -> bool:
    """Every affected CPE is a userspace_ksplice edition (an empty list is not)."""
    if not cpes:
        return False
    for written in cpes:
        try:
            parsed = cpe.parse(written)
        except cpe.CPEError:
            log.warning("oracle: could not parse CPE %r; definition kept", written)
            return False
        if parsed.attrs[_EDITION] != KSPLICE_EDITION:
            return False
    return True


def document_name(year: int) -> str:
    return f"com.oracle.elsa-{year}.xml.bz2"


class OracleUpdater(OvalRpmUpdater):
    version = "1"

    def __init__(self, year: int, base: str = DEFAULT_URL) -> None:
        super().__init__(f"oracle-{year}-updater", urljoin(base, document_name(year)), "bzip2")
        self.year = year

    def prototypes(self, defn: Definition) -> Sequence[Vulnerability]:
        dists = [d for p in defn.platforms if (d := platform_distribution(p)) is not None]
        if not dists or only_ksplice(defn.advisory.affected_cpes):
            return []
        proto = proto_vulnerability(self.name, defn, normalize_severity)
        return [replace(proto, distribution=d) for d in dists]


def _years(value: Any, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(y, int) and not isinstance(y, bool) for y in value
    ):
        raise ConfigProblem(f"{where}: expected a list of years")
    return tuple(sorted(set(value)))


@dataclass(frozen=True, slots=True)
class OracleConfig:
    """`updaters.config.oracle`: `url` (a base for every year's document) and `years` (only
    these years, e.g. for a mirror holding a few). Each `oracle-<year>-updater` takes
    OvalUpdaterConfig."""

    url: str = setting(text, "")
    years: tuple[int, ...] | None = setting(_years, None)


class OracleFactory(UpdaterSetFactory):
    """Years 2007 to the current one, or OracleConfig's `years`."""

    name = "oracle"

    def __init__(self) -> None:
        self.base = DEFAULT_URL
        self.years: list[int] | None = None

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(OracleConfig, config, self.name)
        self.base = with_trailing_slash(settings.url) if settings.url else DEFAULT_URL
        self.years = None if settings.years is None else list(settings.years)

    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]:
        years = self.years
        if years is None:
            years = list(range(FIRST_YEAR, datetime.now(UTC).year + 1))
        return [OracleUpdater(year, self.base) for year in years]
