"""Index records and match constraints: what a matcher looks at and how it narrows the query.

An :class:`IndexRecord` is one (package, distribution, repository) combination of an index
report, as claircore's ``IndexReport.IndexRecords`` produces them (clair-api.md 6.1). A
:class:`Constraint` names a vulnerability column that must equal the matching field of the
record (clair-api.md 6.2); matchers list their constraints as data so callers can build one
SQL query for many records instead of asking each matcher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from clair_common.models import (
    SEVERITY_RANK,
    Distribution,
    IndexReport,
    Package,
    Repository,
    Vulnerability,
)

__all__ = [
    "RULE_COLUMNS",
    "UNMATCHABLE_KIND",
    "Constraint",
    "IndexRecord",
    "index_records",
    "normalized_kind",
    "rule_candidate",
    "severity_sorted",
]

# Packages whose normalized version has this kind never reach a matcher (claircore).
UNMATCHABLE_KIND = "unmatchable"


@dataclass(frozen=True, slots=True)
class IndexRecord:
    """One package as seen in one environment and repository of a manifest."""

    package: Package
    distribution: Distribution | None = None
    repository: Repository | None = None


def index_records(report: IndexReport) -> list[IndexRecord]:
    """One record per (package, environment, repository id), like claircore's IndexRecords.

    An environment without repository ids yields one record with no repository; ids or a
    distribution id that the report does not define yield None in their place.
    """
    out: list[IndexRecord] = []
    for pkg_id, pkg in report.packages.items():
        for env in report.environments.get(pkg_id, ()):
            dist = report.distributions.get(env.distribution_id)
            if not env.repository_ids:
                out.append(IndexRecord(pkg, dist, None))
                continue
            for repo_id in env.repository_ids:
                out.append(IndexRecord(pkg, dist, report.repositories.get(repo_id)))
    return out


def normalized_kind(package: Package) -> str:
    """The kind part of ``normalized_version`` (``"pep440"`` of ``"pep440:0.1.2..."``)."""
    kind, _, _ = package.normalized_version.partition(":")
    return kind


def _dist_field(name: str) -> Callable[[Distribution | None], str]:
    def get(dist: Distribution | None) -> str:
        return "" if dist is None else str(getattr(dist, name))

    return get


def _repo_field(name: str) -> Callable[[Repository | None], str]:
    def get(repo: Repository | None) -> str:
        return "" if repo is None else str(getattr(repo, name))

    return get


class Constraint(Enum):
    """A claircore MatchConstraint; the value is the matcher's ``vuln`` column."""

    PACKAGE_MODULE = "package_module"
    DISTRIBUTION_DID = "dist_id"
    DISTRIBUTION_NAME = "dist_name"
    DISTRIBUTION_VERSION = "dist_version"
    DISTRIBUTION_VERSION_CODE_NAME = "dist_version_code_name"
    DISTRIBUTION_VERSION_ID = "dist_version_id"
    DISTRIBUTION_ARCH = "dist_arch"
    DISTRIBUTION_CPE = "dist_cpe"
    DISTRIBUTION_PRETTY_NAME = "dist_pretty_name"
    REPOSITORY_NAME = "repo_name"
    REPOSITORY_KEY = "repo_key"
    # Not an equality: the vulnerability must name a fixed version.
    HAS_FIXED_IN_VERSION = "fixed_in_version"

    @property
    def vuln_column(self) -> str:
        """The matcher's ``vuln`` column the record value is compared with."""
        return self.value

    @property
    def index_column(self) -> str | None:
        """The indexer column (aliases p=package, d=dist, r=repo) holding the record value."""
        return _INDEX_COLUMNS.get(self)

    @property
    def is_equality(self) -> bool:
        return self is not Constraint.HAS_FIXED_IN_VERSION

    def record_value(self, record: IndexRecord) -> str:
        """The record field a vulnerability's column must equal ("" when absent)."""
        getter = _RECORD_GETTERS.get(self)
        if getter is None:
            raise ValueError("HAS_FIXED_IN_VERSION constrains the vulnerability only")
        return getter(record)

    def vuln_value(self, vuln: Vulnerability) -> str:
        """The vulnerability's value for this constraint ("" when absent)."""
        if self is Constraint.PACKAGE_MODULE:
            return vuln.package.module if vuln.package is not None else ""
        if self is Constraint.HAS_FIXED_IN_VERSION:
            return vuln.fixed_in_version
        field = _FIELDS[self]
        if self.value.startswith("dist_"):
            return _dist_field(field)(vuln.distribution)
        return _repo_field(field)(vuln.repository)


_FIELDS = {
    Constraint.DISTRIBUTION_DID: "did",
    Constraint.DISTRIBUTION_NAME: "name",
    Constraint.DISTRIBUTION_VERSION: "version",
    Constraint.DISTRIBUTION_VERSION_CODE_NAME: "version_code_name",
    Constraint.DISTRIBUTION_VERSION_ID: "version_id",
    Constraint.DISTRIBUTION_ARCH: "arch",
    Constraint.DISTRIBUTION_CPE: "cpe",
    Constraint.DISTRIBUTION_PRETTY_NAME: "pretty_name",
    Constraint.REPOSITORY_NAME: "name",
    Constraint.REPOSITORY_KEY: "key",
}


def _record_getter(constraint: Constraint) -> Callable[[IndexRecord], str]:
    if constraint is Constraint.PACKAGE_MODULE:
        return lambda record: record.package.module
    dist, repo = _dist_field(_FIELDS[constraint]), _repo_field(_FIELDS[constraint])
    if constraint.value.startswith("dist_"):
        return lambda record: dist(record.distribution)
    return lambda record: repo(record.repository)


# Built once: matching asks every record for its values, and per call this was most of it.
_RECORD_GETTERS = {c: _record_getter(c) for c in Constraint if c.is_equality}

_INDEX_COLUMNS = {
    Constraint.PACKAGE_MODULE: "p.module",
    **{c: f"d.{f}" for c, f in _FIELDS.items() if c.value.startswith("dist_")},
    **{c: f"r.{f}" for c, f in _FIELDS.items() if c.value.startswith("repo_")},
}


# The `vuln` columns the rules (`Matcher.vulnerable`) read, in `rule_candidate`'s order. A
# caller may decide on a candidate holding only these and read the full row only for the
# vulnerabilities that match, so a rule must never look at any other field of its `vuln`.
RULE_COLUMNS = (
    "package_version",
    "package_arch",
    "repo_name",
    "repo_key",
    "repo_uri",
    "fixed_in_version",
    "arch_operation",
)


def rule_candidate(
    package_version: str,
    package_arch: str,
    repo_name: str,
    repo_key: str,
    repo_uri: str,
    fixed_in_version: str,
    arch_operation: str,
) -> Vulnerability:
    """A vulnerability holding just what the rules read (:data:`RULE_COLUMNS`)."""
    return Vulnerability(
        package=Package(version=package_version, arch=package_arch),
        repository=Repository(name=repo_name, key=repo_key, uri=repo_uri)
        if repo_name or repo_key or repo_uri
        else None,
        fixed_in_version=fixed_in_version,
        arch_op=arch_operation,
    )


def severity_sorted(ids: list[str], vulns: dict[str, Vulnerability]) -> list[str]:
    """``ids`` by normalized severity, most severe first; ties by numeric id, then text."""

    def key(vuln_id: str) -> tuple[int, int, str]:
        rank = SEVERITY_RANK.get(vulns[vuln_id].normalized_severity, 0)
        number = int(vuln_id) if vuln_id.isdigit() else 0
        return (-rank, number, vuln_id)

    return sorted(ids, key=key)
