"""Package and distribution scanners, and the default set the indexer runs.

Names and kinds are Clair's (clair-api.md 5.3), so detectors and index_state line up with what
clients know; versions are our own and change whenever a scanner's output would.
"""

from __future__ import annotations

from clair_common.config.models import ScannerConfig

from .apk import ApkScanner
from .base import LayerFiles, Scanner, ScanResult, detector
from .distributions import AlpineScanner, DebianScanner, UbuntuScanner
from .dpkg import DistrolessScanner, DpkgScanner
from .gobin import GoBinaryScanner
from .python import PythonScanner
from .rhcc import RhccLabelsScanner, RhccScanner
from .rhel_repositories import RhelRepositoryScanner
from .rpm import RpmScanner
from .rpm_distributions import (
    AwsScanner,
    OracleScanner,
    PhotonScanner,
    RhelScanner,
    SuseScanner,
)

__all__ = [
    "AlpineScanner",
    "ApkScanner",
    "AwsScanner",
    "DebianScanner",
    "DistrolessScanner",
    "DpkgScanner",
    "GoBinaryScanner",
    "LayerFiles",
    "OracleScanner",
    "PhotonScanner",
    "PythonScanner",
    "RhccLabelsScanner",
    "RhccScanner",
    "RhelRepositoryScanner",
    "RhelScanner",
    "RpmScanner",
    "ScanResult",
    "Scanner",
    "SuseScanner",
    "UbuntuScanner",
    "default_scanners",
    "detector",
    "rpm_package_scanners",
]


def rpm_package_scanners() -> list[Scanner]:
    """The rpm family's package scanners.

    One `rpm` scanner reads every rpm database (sqlite, Berkeley DB, ndb); the distribution
    found beside it (RHEL, Amazon, Oracle, SUSE, Photon) tells the matchers apart; RHEL's
    repository CPEs (`rhel-repository-scanner`) are attached to them when coalescing.
    """
    return [RpmScanner()]


def default_scanners(config: ScannerConfig | None = None, *, airgap: bool = False) -> list[Scanner]:
    """Clair's default scanner set, grouped by coalescing ecosystem.

    `config` is `indexer.scanner` (options per scanner name); `airgap` is `indexer.airgap`.
    Raises ValueError/OSError for unusable scanner options, as Clair fails at start-up.
    """
    repo_config = config.repo if config is not None else {}
    return [
        # dpkg
        DpkgScanner(),
        DistrolessScanner(),
        DebianScanner(),
        UbuntuScanner(),
        # alpine
        ApkScanner(),
        AlpineScanner(),
        # rhel (distribution and repository CPEs here; packages from rpm_package_scanners)
        RhelScanner(),
        RhelRepositoryScanner.from_config(
            repo_config.get(RhelRepositoryScanner.name), airgap=airgap
        ),
        # rpm
        AwsScanner(),
        OracleScanner(),
        SuseScanner(),
        PhotonScanner(),
        *rpm_package_scanners(),
        # rhcc (Red Hat container images as packages, for the rhcc matcher)
        RhccScanner(),
        RhccLabelsScanner(),
        # python
        PythonScanner(),
        # Go executables anywhere in the tree
        GoBinaryScanner(),
    ]
