"""The distribution records the indexer and the matcher must write identically.

A vulnerability is found only when the distribution its updater stored equals, in the columns
the matcher compares, the one the indexer's scanner reported (clair-api.md 7.2). claircore
keeps these values in one ``releases.go`` per ecosystem; this module is our single copy of
them, used by the distribution scanners and by the updaters of the same systems.
"""

from __future__ import annotations

from clair_common.models import Distribution
from clair_common.vulnerable.cpe import to_formatted_string

__all__ = [
    "AMAZON_LINUX_VERSIONS",
    "amazon_linux_distribution",
    "debian_distribution",
    "leap_distribution",
    "oracle_distribution",
    "photon_distribution",
    "rhel_distribution",
    "sles_distribution",
    "ubuntu_distribution",
]

# claircore aws/releases.go: version → (name, the CPE os-release gives).
_AMAZON_LINUX = {
    "2018.03": ("Amazon Linux AMI", "cpe:/o:amazon:linux:2018.03:ga"),
    "2": ("Amazon Linux", "cpe:2.3:o:amazon:amazon_linux:2"),
    "2023": ("Amazon Linux", "cpe:2.3:o:amazon:amazon_linux:2023"),
}
AMAZON_LINUX_VERSIONS = tuple(_AMAZON_LINUX)


def debian_distribution(codename: str, major: int) -> Distribution:
    """claircore debian/releases.go mkDist."""
    return Distribution(
        did="debian",
        name="Debian GNU/Linux",
        version=f"{major} ({codename})",
        version_code_name=codename,
        version_id=str(major),
        pretty_name=f"Debian GNU/Linux {major} ({codename})",
    )


def ubuntu_distribution(version_id: str, codename: str) -> Distribution:
    """claircore ubuntu/updaterset.go mkDist: "20.04 (Focal)", "Ubuntu 20.04"."""
    # Go's strings.Title on the one-word codename: only the first letter is upper-cased.
    title = codename[:1].upper() + codename[1:]
    return Distribution(
        did="ubuntu",
        name="Ubuntu",
        version=f"{version_id} ({title})",
        version_code_name=codename,
        version_id=version_id,
        pretty_name=f"Ubuntu {version_id}",
    )


def rhel_distribution(major: int | str) -> Distribution:
    """claircore rhel/releases.go mkRelease."""
    ver = str(major)
    return Distribution(
        did="rhel",
        name="Red Hat Enterprise Linux Server",
        version=ver,
        version_id=ver,
        pretty_name=f"Red Hat Enterprise Linux Server {ver}",
        cpe=to_formatted_string(f"cpe:/o:redhat:enterprise_linux:{ver}"),
    )


def amazon_linux_distribution(version: str) -> Distribution:
    """One of :data:`AMAZON_LINUX_VERSIONS` (``"2018.03"``, ``"2"``, ``"2023"``); KeyError else."""
    name, cpe = _AMAZON_LINUX[version]
    return Distribution(
        did="amzn",
        name=name,
        version=version,
        version_id=version,
        pretty_name=f"{name} {version}",
        cpe=to_formatted_string(cpe),
    )


def oracle_distribution(major: int | str) -> Distribution:
    """claircore oracle/releases.go, one release per major version."""
    ver = str(major)
    return Distribution(
        did="ol",
        name="Oracle Linux Server",
        version=ver,
        version_code_name=f"Oracle Linux {ver}",
        version_id=ver,
        pretty_name=f"Oracle Linux Server {ver}",
    )


def sles_distribution(major: str) -> Distribution:
    """claircore suse/releases.go: one SLES release per major version."""
    return Distribution(
        did="sles",
        name="SLES",
        version=major,
        version_id=major,
        pretty_name=f"SUSE Linux Enterprise Server {major}",
    )


def leap_distribution(version: str, did: str = "opensuse-leap") -> Distribution:
    """claircore suse/releases.go: an openSUSE Leap release (``did`` as os-release says)."""
    return Distribution(
        did=did,
        name="openSUSE Leap",
        version=version,
        version_id=version,
        pretty_name=f"openSUSE Leap {version}",
    )


def photon_distribution(version: str) -> Distribution:
    """claircore photon/releases.go mkDist."""
    return Distribution(
        did="photon",
        name="VMware Photon OS",
        version=version,
        version_id=version,
        pretty_name="VMware Photon OS/Linux",
    )
