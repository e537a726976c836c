"""Container (`pkg:oci/...`) products of Red Hat VEX documents, for the rhcc matcher.

claircore `rhel/vex/parser.go` rules:
- the package is the image's repository path: the purl's `namespace/name` when it has a
  namespace (`pkg:oci/openshift3/metrics-cassandra`), else the part of `repository_url` after
  the registry host (`registry.redhat.io/rh-sso-7/sso76-openshift-rhel8`), else the purl name;
- a `fixed` product is fixed in the purl's `tag` qualifier (`7.6-22`); one without a tag is
  skipped;
- names starting with `kernel` are skipped, as for rpms;
- the record's repository is the Red Hat Container Catalog (`rhcc-container-repository`),
  whatever CPE the product tree gives the product.
"""

from __future__ import annotations

from clair_common.models import Repository
from clair_common.vulnerable import rhcc
from clair_matcher.updaters.rhel_vex._csaf import PackageURL

OCI = "oci"


def is_container(purl: PackageURL) -> bool:
    """A container product the rhcc matcher can use."""
    return purl.type == OCI and not purl.name.startswith("kernel")


def image_name(purl: PackageURL) -> str | None:
    """The image's repository path, or None for a `repository_url` without a path."""
    if purl.namespace:
        return f"{purl.namespace}/{purl.name}"
    url = purl.qualifiers.get("repository_url")
    if url is None:
        return purl.name
    _, slash, path = url.partition("/")
    return path if slash else None


def fixed_tag(purl: PackageURL) -> str | None:
    return purl.qualifiers.get("tag")


_GOLD = rhcc.gold_repository()


def repository() -> Repository:
    """The shared rhcc repository of container records (never mutated by record code)."""
    return _GOLD
