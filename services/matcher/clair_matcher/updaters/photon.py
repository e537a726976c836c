"""VMware Photon OS (claircore `photon/`): one OVAL updater per release, `photon-updater-N.0`.

Each release's document is `com.vmware.phsa-photonN.xml` under Photon's OVAL directory (or a
configured `url` base for the whole set); every record gets the release's distribution, the
one the Photon distribution scanner reports for that release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp

from clair_common.distributions import photon_distribution
from clair_common.models import Vulnerability
from clair_matcher.updaters._config import read_config, setting, text, with_trailing_slash
from clair_matcher.updaters._oval import Definition, OvalRpmUpdater, proto_vulnerability
from clair_matcher.updaters.base import Updater, UpdaterSetFactory

DEFAULT_URL = "https://packages.vmware.com/photon/photon_oval_definitions/"
RELEASES = ("1.0", "2.0", "3.0", "4.0", "5.0")
# claircore photon/normalizeseverity.go: exact, case-sensitive.
SEVERITIES = {"Low": "Low", "Moderate": "Medium", "Important": "High", "Critical": "Critical"}


def normalize_severity(severity: str) -> str:
    return SEVERITIES.get(severity, "Unknown")


def document_name(release: str) -> str:
    return f"com.vmware.phsa-photon{release.split('.')[0]}.xml"


class PhotonUpdater(OvalRpmUpdater):
    version = "1"

    def __init__(self, release: str, base: str = DEFAULT_URL) -> None:
        super().__init__(f"photon-updater-{release}", urljoin(base, document_name(release)), "none")
        self.release = release
        self.dist = photon_distribution(release)

    def prototypes(self, defn: Definition) -> Sequence[Vulnerability]:
        proto = proto_vulnerability(self.name, defn, normalize_severity)
        proto.distribution = self.dist
        return [proto]


@dataclass(frozen=True, slots=True)
class PhotonConfig:
    """`updaters.config.photon`: `url`, the base of every release's document. Each
    `photon-updater-N.0` takes OvalUpdaterConfig."""

    url: str = setting(text, "")


class PhotonFactory(UpdaterSetFactory):
    """Photon 1.0 to 5.0; `updaters.config.photon.url` moves every document under one base."""

    name = "photon"

    def __init__(self) -> None:
        self.base = DEFAULT_URL

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(PhotonConfig, config, self.name)
        self.base = with_trailing_slash(settings.url) if settings.url else DEFAULT_URL

    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]:
        return [PhotonUpdater(release, self.base) for release in RELEASES]
