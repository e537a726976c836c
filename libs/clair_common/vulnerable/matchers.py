"""One object per Clair matcher: which records it wants, its query constraints, its rule.

Each rule reproduces the claircore matcher named in clair-api.md 6.3 (debian/, ubuntu/,
alpine/, aws/, oracle/, photon/, suse/, rhel/, rhel/rhcc/, python/, gobin/ matcher.go).
``vulnerable`` raises :class:`MatchError` exactly where claircore's ``Vulnerable`` returns an
error; Clair then fails the whole vulnerability report, so callers should too.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from clair_common.models import Vulnerability
from clair_common.versions import apk, dpkg, semver
from clair_common.vulnerable import cpe, osv, rhcc
from clair_common.vulnerable.records import (
    RULE_COLUMNS,
    Constraint,
    IndexRecord,
    normalized_kind,
)
from clair_common.vulnerable.rpmrule import (
    arch_matches,
    lenient_evr_key,
    rpm_vulnerable,
)

__all__ = ["MATCHER_NAMES", "MatchError", "Matcher", "default_matchers"]

log = logging.getLogger("clair.matchers")

RHEL_REPOSITORY_KEY = "rhel-cpe-repository"
# What the RHEL matcher compares an unfixed vulnerability with (go-rpm-version, `!= GREATER`).
_RHEL_UNFIXED = "65535:0"
_ALL_ANY = cpe.CPE((cpe.ANY,) * cpe.ATTRIBUTES)


class MatchError(ValueError):
    """A version the rule cannot compare; Clair answers such a report with HTTP 500."""


class Matcher(ABC):
    """A claircore ``driver.Matcher``: Filter, Query (as constraints) and Vulnerable."""

    name: ClassVar[str]
    constraints: tuple[Constraint, ...] = ()
    # The RULE_COLUMNS that `vulnerable` reads: callers may leave the others empty.
    rule_columns: ClassVar[tuple[str, ...]] = RULE_COLUMNS

    @abstractmethod
    def filter(self, record: IndexRecord) -> bool:
        """Whether this matcher is interested in the record."""

    @abstractmethod
    def vulnerable(self, record: IndexRecord, vuln: Vulnerability) -> bool:
        """Whether the record's package is affected; raises MatchError where Clair errors.

        Reads only the fields of ``vuln`` that :func:`records.rule_candidate` fills from the
        matcher's ``rule_columns``: report matching decides on such partial candidates and
        loads full rows only for the vulnerabilities that match.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# What debian, oracle, photon and suse match a distribution on (besides the package name).
_DID_NAME_VERSION = (
    Constraint.DISTRIBUTION_DID,
    Constraint.DISTRIBUTION_NAME,
    Constraint.DISTRIBUTION_VERSION,
)


class _DistributionMatcher(Matcher):
    """Interested in records whose distribution has one of these IDs or names."""

    dids: ClassVar[frozenset[str]] = frozenset()
    names: ClassVar[frozenset[str]] = frozenset()

    def filter(self, record: IndexRecord) -> bool:
        dist = record.distribution
        return dist is not None and (dist.did in self.dids or dist.name in self.names)


class DebianMatcher(_DistributionMatcher):
    name = "debian-matcher"
    dids = frozenset({"debian"})
    names = frozenset({"Debian GNU/Linux"})
    constraints = _DID_NAME_VERSION
    rule_columns = ("fixed_in_version",)

    def vulnerable(self, record: IndexRecord, vuln: Vulnerability) -> bool:
        fixed = vuln.fixed_in_version
        if fixed == "":
            return True
        if fixed == "0":  # Debian's "not affected"
            return False
        try:
            package = dpkg.sort_key(record.package.version)
        except ValueError:
            return False
        try:
            bound = dpkg.sort_key(fixed)
        except ValueError as err:
            raise MatchError(str(err)) from None
        return bool(package < bound)


class UbuntuMatcher(_DistributionMatcher):
    name = "ubuntu-matcher"
    dids = frozenset({"ubuntu"})
    names = frozenset({"Ubuntu"})
    constraints = (
        Constraint.DISTRIBUTION_DID,
        Constraint.DISTRIBUTION_NAME,
        Constraint.DISTRIBUTION_VERSION_ID,
    )
    rule_columns = ("fixed_in_version",)

    def vulnerable(self, record: IndexRecord, vuln: Vulnerability) -> bool:
        fixed = vuln.fixed_in_version
        if fixed == "":
            return True
        try:
            package = dpkg.sort_key(record.package.version)
            bound = dpkg.sort_key(fixed)
            parts = dpkg.split(fixed)
        except ValueError as err:
            raise MatchError(str(err)) from None
        if parts.epoch == 0 and parts.upstream == "0" and not parts.revision:
            return True  # Ubuntu's "0" means not fixed yet, unlike Debian's
        return bool(package < bound)


class AlpineMatcher(_DistributionMatcher):
    name = "alpine-matcher"
    dids = frozenset({"alpine"})
    names = frozenset({"Alpine Linux"})
    constraints = (
        Constraint.DISTRIBUTION_DID,
        Constraint.DISTRIBUTION_NAME,
        Constraint.DISTRIBUTION_PRETTY_NAME,
    )
    rule_columns = ("fixed_in_version",)

    def vulnerable(self, record: IndexRecord, vuln: Vulnerability) -> bool:
        # Every parse error is "not vulnerable" here, never an error.
        if not apk.is_valid(record.package.version):
            return False
        fixed = vuln.fixed_in_version
        if fixed == "":
            return True
        if fixed == "0":
            return False
        if not apk.is_valid(fixed):
            return False
        return bool(apk.sort_key(record.package.version) < apk.sort_key(fixed))


class _RpmMatcher(_DistributionMatcher):
    rule_columns = ("package_version", "package_arch", "fixed_in_version", "arch_operation")

    def vulnerable(self, record: IndexRecord, vuln: Vulnerability) -> bool:
        try:
            return rpm_vulnerable(record, vuln)
        except ValueError as err:
            raise MatchError(str(err)) from None


class AwsMatcher(_RpmMatcher):
    name = "aws-matcher"
    dids = frozenset({"amzn"})
    names = frozenset({"Amazon Linux AMI", "Amazon Linux"})
    constraints = (Constraint.DISTRIBUTION_DID, Constraint.DISTRIBUTION_VERSION_ID)


class OracleMatcher(_RpmMatcher):
    name = "oracle"
    dids = frozenset({"ol"})
    names = frozenset({"Oracle Linux Server"})
    constraints = _DID_NAME_VERSION


class PhotonMatcher(_RpmMatcher):
    name = "photon"
    dids = frozenset({"photon"})
    constraints = _DID_NAME_VERSION


class SuseMatcher(_RpmMatcher):
    name = "suse"
    dids = frozenset({"sles", "opensuse", "opensuse-leap"})
    names = frozenset({"SLES", "openSUSE Leap"})
    constraints = _DID_NAME_VERSION


class RhelMatcher(Matcher):
    """Red Hat VEX data: repositories are CPEs, compared as CPE match expressions."""

    name = "rhel"
    rule_columns = (
        "package_arch",
        "repo_name",
        "repo_key",
        "repo_uri",
        "fixed_in_version",
        "arch_operation",
    )

    def __init__(self, *, ignore_unpatched: bool = False) -> None:
        self.ignore_unpatched = ignore_unpatched
        self.constraints = (Constraint.PACKAGE_MODULE, Constraint.REPOSITORY_KEY) + (
            (Constraint.HAS_FIXED_IN_VERSION,) if ignore_unpatched else ()
        )

    def filter(self, record: IndexRecord) -> bool:
        return record.repository is not None and record.repository.key == RHEL_REPOSITORY_KEY

    def vulnerable(self, record: IndexRecord, vuln: Vulnerability) -> bool:
        repo = record.repository
        if vuln.repository is None or repo is None or vuln.repository.key != RHEL_REPOSITORY_KEY:
            return False
        try:
            vuln_cpe = cpe.parse(vuln.repository.name)
        except cpe.CPEError:
            return False  # claircore logs and skips such a vulnerability
        try:
            record_cpe = cpe.parse(repo.cpe) if repo.cpe else _ALL_ANY
            record_fs = record_cpe.bind_fs() if repo.cpe else ""
        except cpe.CPEError:
            record_cpe, record_fs = _ALL_ANY, ""
        if not (cpe.is_superset(vuln_cpe, record_cpe) or cpe.substring_match(record_fs, vuln_cpe)):
            return False
        package = lenient_evr_key(record.package.version)
        if vuln.fixed_in_version:
            affected = package < lenient_evr_key(vuln.fixed_in_version)
        else:
            affected = package <= lenient_evr_key(_RHEL_UNFIXED)
        vuln_arch = vuln.package.arch if vuln.package is not None else ""
        return affected and arch_matches(vuln.arch_op, record.package.arch, vuln_arch)


class RhccMatcher(Matcher):
    """Red Hat container images (`rhcc`): the image's tag against the fixed tag."""

    name = "rhel-container-matcher"
    constraints = (Constraint.REPOSITORY_KEY,)
    rule_columns = ("package_version", "fixed_in_version")

    def filter(self, record: IndexRecord) -> bool:
        return record.repository is not None and record.repository.key == rhcc.REPOSITORY_KEY

    def vulnerable(self, record: IndexRecord, vuln: Vulnerability) -> bool:
        return rhcc.rhcc_vulnerable(record, vuln)


def _key(bound: tuple[int, ...] | ValueError) -> tuple[int, ...]:
    if isinstance(bound, ValueError):
        raise MatchError(str(bound))
    return bound


class PythonMatcher(Matcher):
    """PyPI advisories from OSV: ``fixed_in_version`` is ``introduced=..&fixed=..``."""

    name = "python"
    constraints = (Constraint.REPOSITORY_NAME,)
    rule_columns = ("fixed_in_version",)

    def filter(self, record: IndexRecord) -> bool:
        return normalized_kind(record.package) == "pep440"

    def vulnerable(self, record: IndexRecord, vuln: Vulnerability) -> bool:
        if vuln.fixed_in_version == "":
            return True
        try:
            package = osv.pep440_key(record.package.version)
            introduced, fixed, last_affected = osv.pep440_bounds(vuln.fixed_in_version)
        except ValueError as err:
            raise MatchError(str(err)) from None
        # In claircore's order: a bound's bad version fails the report only if it is read.
        if introduced is not None and package < _key(introduced):
            return False
        if fixed is not None:
            return package < _key(fixed)
        if last_affected is not None:
            return package <= _key(last_affected)
        return True


GO_REPOSITORY_URI = "https://pkg.go.dev/"


def _semver(bound: semver.SortKey | ValueError) -> semver.SortKey:
    if isinstance(bound, ValueError):
        raise MatchError(str(bound))
    return bound


class GoMatcher(Matcher):
    """Go modules and the standard library from OSV (claircore `gobin`): ``fixed_in_version``
    is ``introduced=..&fixed=..`` of a SEMVER range; ``stdlib`` at ``go1.x.y`` is compared
    as the semver the Go vulnerability database writes. A version that is not semver (a
    ``(devel)`` main module, a ``devel`` toolchain) matches nothing."""

    name = "gobin"
    constraints = (Constraint.REPOSITORY_NAME,)
    rule_columns = ("fixed_in_version",)

    def filter(self, record: IndexRecord) -> bool:
        return record.repository is not None and record.repository.uri == GO_REPOSITORY_URI

    def vulnerable(self, record: IndexRecord, vuln: Vulnerability) -> bool:
        version: str | None = record.package.version
        if record.package.name == "stdlib":
            version = semver.toolchain_semver(record.package.version)
        try:
            package = semver.sort_key(version or "")
        except ValueError:
            return False
        if vuln.fixed_in_version == "":
            return True
        try:
            introduced, fixed, last_affected = osv.semver_bounds(vuln.fixed_in_version)
        except ValueError as err:
            raise MatchError(str(err)) from None
        if introduced is not None and package < _semver(introduced):
            return False
        if fixed is not None:
            return package < _semver(fixed)
        if last_affected is not None:
            return package <= _semver(last_affected)
        return True


_FACTORIES: dict[str, type[Matcher]] = {
    m.name: m
    for m in (
        AlpineMatcher,
        AwsMatcher,
        DebianMatcher,
        GoMatcher,
        OracleMatcher,
        PhotonMatcher,
        PythonMatcher,
        RhccMatcher,
        RhelMatcher,
        SuseMatcher,
        UbuntuMatcher,
    )
}
MATCHER_NAMES: tuple[str, ...] = tuple(sorted(_FACTORIES))
# Clair matchers outside our support matrix (clair-api.md "Our decisions"): accepted in
# `matchers.names`, but they match nothing.
UNSUPPORTED_MATCHERS = frozenset({"java-maven", "ruby-gem"})


def default_matchers(
    names: Sequence[str] | None = None, config: Mapping[str, Any] | None = None
) -> list[Matcher]:
    """The matchers named by ``matchers.names`` (None: all), configured by ``matchers.config``.

    Unknown names are logged and skipped rather than fatal, so Clair configs listing matchers
    outside our support matrix keep working.
    """
    wanted: Collection[str] = MATCHER_NAMES if names is None else names
    config = config or {}
    out: list[Matcher] = []
    for name in dict.fromkeys(wanted):
        factory = _FACTORIES.get(name)
        if factory is None:
            if name not in UNSUPPORTED_MATCHERS:
                log.warning("unknown matcher %r in matchers.names; ignored", name)
            continue
        if factory is RhelMatcher:
            options = config.get(name) or {}
            out.append(RhelMatcher(ignore_unpatched=bool(options.get("ignore_unpatched"))))
        else:
            out.append(factory())
    return out
