"""RPM version rules: claircore's ``internal/rpm`` MatchVulnerable and the arch operations.

claircore parses these versions with ``internal/rpmver``, which is looser than rpm's EVR
parsing in some places and stricter in one: a string without any ``-`` (no release) is an
error, and with two or more ``-`` everything before the last two is a package *name* that
takes part in the comparison. A known architecture suffix of the release (``.x86_64``) is
split off and compared last. We keep those rules so versions order exactly as in Clair.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TypeAlias

from clair_common.models import Vulnerability
from clair_common.versions import rpm
from clair_common.vulnerable.records import IndexRecord

__all__ = ["arch_matches", "lenient_evr_key", "rpm_vulnerable", "rpmver_key"]

_ARCHITECTURES = frozenset(
    {"aarch64", "i386", "i686", "noarch", "ppc64le", "riscv", "s390x", "src", "x86_64"}
)
# A missing name or architecture sorts below any present one.
_ABSENT: tuple[int] = (0,)
# Compared against when the vulnerability names no version at all: "infinitely" new.
_INFINITE = "65535:65535-65535"

OptionalKey: TypeAlias = tuple[int] | tuple[int, rpm.VercmpKey]
RpmverKey: TypeAlias = tuple[OptionalKey, rpm.VercmpKey, rpm.VercmpKey, rpm.VercmpKey, OptionalKey]


def _optional(value: str | None) -> OptionalKey:
    return _ABSENT if value is None else (1, rpm.vercmp_key(value))


@lru_cache(maxsize=65536)
def rpmver_key(text: str) -> RpmverKey:
    """A key ordering versions like claircore's ``rpmver.Compare``; ValueError if unparsable."""
    dashes = text.count("-")
    if dashes == 0:
        raise ValueError(f"rpmver: {text}: missing separators")
    name: str | None = None
    if dashes > 1:
        cut = text.rfind("-", 0, text.rfind("-"))
        name, text = text[:cut], text[cut + 1 :]
    epoch_version, _, release = text.partition("-")
    epoch, colon, version = epoch_version.partition(":")
    if not colon:
        epoch, version = "0", epoch_version
    elif not epoch:
        epoch = "0"
    arch: str | None = None
    head, dot, tail = release.rpartition(".")
    if dot and tail in _ARCHITECTURES:
        release, arch = head, tail
    return (
        _optional(name),
        rpm.vercmp_key(epoch),
        rpm.vercmp_key(version),
        rpm.vercmp_key(release),
        _optional(arch),
    )


@lru_cache(maxsize=65536)
def lenient_evr_key(text: str) -> tuple[int, rpm.VercmpKey, rpm.VercmpKey]:
    """go-rpm-version's reading of ``[epoch:]version[-release]``, which never fails.

    The RHEL matcher still uses that library: a non-numeric epoch counts as 0.
    """
    epoch_text, colon, rest = text.partition(":")
    epoch = 0
    if colon:
        epoch = int(epoch_text) if epoch_text.isascii() and epoch_text.isdigit() else 0
    else:
        rest = text
    version, hyphen, release = rest.rpartition("-")
    if not hyphen:
        version, release = rest, ""
    return (epoch, rpm.vercmp_key(version), rpm.vercmp_key(release))


@lru_cache(maxsize=1024)
def _arch_pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def arch_matches(operation: str, record_arch: str, vuln_arch: str) -> bool:
    """claircore's ``ArchOp.Cmp``: no vulnerability arch matches all; an unknown op none."""
    if not vuln_arch:
        return True
    if not record_arch:
        return False
    if operation == "equals":
        return record_arch == vuln_arch
    if operation == "not equals":
        return record_arch != vuln_arch
    if operation == "pattern match":
        # Go's MatchString finds the pattern anywhere, like re.search.
        pattern = _arch_pattern(vuln_arch)
        return pattern is not None and pattern.search(record_arch) is not None
    return False


def rpm_vulnerable(record: IndexRecord, vuln: Vulnerability) -> bool:
    """Given package version P: P < fixed, else P <= the vuln's package version, else true.

    Raises ValueError for an unparsable version, which fails the report as in Clair.
    """
    try:
        package = rpmver_key(record.package.version)
    except ValueError as err:
        raise ValueError(f"rpm: unable to parse package version: {err}") from None
    vuln_package_version = vuln.package.version if vuln.package is not None else ""
    strictly_less = bool(vuln.fixed_in_version)
    target = vuln.fixed_in_version or vuln_package_version or _INFINITE
    try:
        bound = rpmver_key(target)
    except ValueError as err:
        raise ValueError(f"rpm: unable to parse vulnerability version: {err}") from None
    in_range = package < bound if strictly_less else package <= bound
    vuln_arch = vuln.package.arch if vuln.package is not None else ""
    return in_range and arch_matches(vuln.arch_op, record.package.arch, vuln_arch)
