"""The `rpm` package scanner: installed packages from rpm databases, read without librpm.

Rules from claircore `rpm/packagescanner.go` (v10), `internal/rpm/find.go`, `database.go`:
- a database is any file named `rpmdb.sqlite`, `Packages` (only with Berkeley DB hash magic)
  or `Packages.db` (only with ndb magic), in any directory: in practice `var/lib/rpm`,
  `usr/lib/sysimage/rpm` and `usr/share/rpm`;
- `package_db` is `<kind>:<directory>`, e.g. `sqlite:var/lib/rpm` or `bdb:var/lib/rpm`
  (what real Clair reports carry), so two backends in one directory stay apart;
- binary: name, arch, version = EVR with the epoch only when non-zero, module = the
  modularity label cut to `name:stream`, repository hint from the payload digest and the
  signing key; `gpg-pubkey` entries are keys, not packages, and are skipped;
- source: parsed from SOURCERPM `name-[epoch:]version-release[.arch].(no)src.rpm`, one
  shared object per SOURCERPM value per database, no module; left out when unparsable.

A database that cannot be read raises `RpmDBError` (a ValueError) out of `scan`: the indexer
records the layer's index as failed rather than reporting a partial package list, as Clair
does. The `rhel-package-scanner` (ecosystem "rhel") finds and converts databases the same
way: it can call `rpm_packages(layer)` and differ only in name, version and ecosystem.
"""

from __future__ import annotations

import posixpath
from typing import ClassVar

from clair_common.models import Package

from ..rpmdb import FILE_NAMES, DBKind, RpmPackage, detect_kind, read_packages
from .base import LayerFiles, Scanner, ScanResult

# Architectures claircore's rpmver strips from the end of a release.
_ARCH_SUFFIXES = frozenset(
    {".aarch64", ".i686", ".noarch", ".ppc64le", ".riscv", ".s390x", ".src", ".x86_64"}
)
_PUBKEY = "gpg-pubkey"


def parse_source_rpm(source_rpm: str) -> tuple[str, str] | None:
    """(name, EVR) from a SOURCERPM file name, as claircore's `rpmver.Parse` reads it."""
    text = source_rpm.removesuffix(".rpm").removesuffix(".src").removesuffix(".nosrc")
    if text.count("-") < 2:
        return None  # no name (or nothing) to parse
    cut = text.rindex("-", 0, text.rindex("-"))
    name, rest = text[:cut], text[cut + 1 :]
    version, _, release = rest.partition("-")
    epoch = "0"
    if ":" in version:
        given, _, version = version.partition(":")
        epoch = given or "0"
    dot = release.rfind(".")
    if dot >= 0 and release[dot:] in _ARCH_SUFFIXES:
        release = release[:dot]
    prefix = "" if epoch == "0" else f"{epoch}:"
    return name, f"{prefix}{version}-{release}"


def to_packages(rpms: list[RpmPackage], package_db: str) -> list[Package]:
    """Clair packages of one database, in storage order, gpg-pubkey entries dropped."""
    sources: dict[str, Package | None] = {"": None, "(none)": None}
    out: list[Package] = []
    for rpm in rpms:
        if rpm.name == _PUBKEY:
            continue
        key = rpm.source_rpm.removesuffix(".rpm").removesuffix(".src").removesuffix(".nosrc")
        if key not in sources:
            parsed = parse_source_rpm(rpm.source_rpm)
            sources[key] = (
                None
                if parsed is None
                else Package(
                    name=parsed[0], version=parsed[1], kind="source", package_db=package_db
                )
            )
        out.append(
            Package(
                name=rpm.name,
                version=rpm.evr,
                kind="binary",
                source=sources[key],
                module=rpm.module_stream,
                arch=rpm.arch,
                package_db=package_db,
                repository_hint=rpm.repository_hint,
            )
        )
    return out


def is_database_path(path: str) -> bool:
    return posixpath.basename(path) in FILE_NAMES


def database_kind(path: str, data: bytes) -> DBKind | None:
    """The backend of a candidate file, or None when it is not an rpm database after all.

    `rpmdb.sqlite` is taken on its name (a broken one is an error, as in Clair); `Packages`
    and `Packages.db` only count with their backend's magic, since other tools use the names.
    """
    expected = FILE_NAMES.get(posixpath.basename(path))
    if expected is None or expected == "sqlite":
        return expected
    return expected if detect_kind(data) == expected else None


def rpm_packages(layer: LayerFiles) -> list[Package]:
    """Packages of every rpm database in the layer, databases in path order."""
    packages: list[Package] = []
    for path in sorted(layer.files):
        if not is_database_path(path):
            continue
        data = layer.files[path]
        kind = database_kind(path, data)
        if kind is None:
            continue
        package_db = f"{kind}:{posixpath.dirname(path)}"
        packages.extend(to_packages(read_packages(data, kind), package_db))
    return packages


class RpmScanner(Scanner):
    name: ClassVar[str] = "rpm"
    version: ClassVar[str] = "10"
    kind: ClassVar[str] = "package"
    ecosystem: ClassVar[str] = "rpm"

    def wants(self, path: str) -> bool:
        return is_database_path(path)

    def scan(self, layer: LayerFiles) -> ScanResult:
        return ScanResult(packages=rpm_packages(layer))
