"""Red Hat Container Catalog ("rhcc"): a whole Red Hat image treated as one package.

Shared by the indexer (the `rhel_containerscanner` reports an image's build labels as a
package in this repository), the `rhel-vex` updater (container products become records in it)
and the `rhel-container-matcher` (claircore `rhel/rhcc`). Versions are image tags
(`<version>-<release>`, e.g. `v4.6.0-202112132021.p0` or `7.6-22`), compared with claircore's
rpmver ordering after adding a `-0` release to a tag without one, as claircore does.
"""

from __future__ import annotations

from clair_common.models import Repository, Vulnerability
from clair_common.vulnerable.records import IndexRecord
from clair_common.vulnerable.rpmrule import RpmverKey, rpmver_key

__all__ = [
    "REPOSITORY_KEY",
    "REPOSITORY_NAME",
    "REPOSITORY_URI",
    "gold_repository",
    "rhcc_vulnerable",
]

REPOSITORY_KEY = "rhcc-container-repository"
REPOSITORY_NAME = "Red Hat Container Catalog"
REPOSITORY_URI = "https://catalog.redhat.com/software/containers/explore"


def gold_repository() -> Repository:
    """A fresh copy of claircore's `GoldRepo` (callers attach ids to theirs)."""
    return Repository(name=REPOSITORY_NAME, key=REPOSITORY_KEY, uri=REPOSITORY_URI)


def _tag_key(tag: str) -> RpmverKey:
    # rpmver needs a release; a bare tag ("1.16") is "1.16-0". A tag with several dashes
    # reads its head as rpmver's name part, which is what claircore compares too.
    return rpmver_key(tag if "-" in tag else f"{tag}-0")


def rhcc_vulnerable(record: IndexRecord, vuln: Vulnerability) -> bool:
    """Affected when there is no fixed tag, or the image's tag sorts below it.

    Architectures are not compared (claircore's matcher does not either: a fixed record lists
    every architecture the fix shipped for).
    """
    if not vuln.fixed_in_version:
        return True
    if not record.package.version:
        return False
    return _tag_key(record.package.version) < _tag_key(vuln.fixed_in_version)
