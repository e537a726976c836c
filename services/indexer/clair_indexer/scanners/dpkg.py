"""dpkg package databases: `.../dpkg/status` and distroless `.../dpkg/status.d/*`.

Rules from claircore `dpkg/scanner.go` (v6) and `dpkg/distroless_scanner.go` (v1):
- status: a stanza counts when its Status field has both the words `ok` and `installed`;
  binary {name, version, arch, kind binary, package_db = the status path}; source from
  `Source:` ("name (version)" gives the source version, a bare name takes the binary's
  version), else a source named like the binary with its version. One source object per
  source name per database (the first one seen wins), one binary per name (the last one wins),
  output sorted by (name, version).
- status.d: every stanza of every file counts (no Status there); a source only when `Source:`
  is present, taken whole as the name, with the binary's version; package_db is the file.
Clair also requires an `info/` directory beside `status` and stores an md5 of each package's
`info/*.md5sums` as a repository hint nobody reads; we accept any `.../dpkg/status` and skip the
hint, so the `info/` files never need to be kept in memory.
"""

from __future__ import annotations

from typing import ClassVar

from clair_common.models import Package

from .base import LayerFiles, Scanner, ScanResult

STATUS_SUFFIX = "dpkg/status"
_STATUS_D = "status.d"

_PACKAGE = b"Package"
_STATUS = b"Status"
_VERSION = b"Version"
_ARCH = b"Architecture"
_SOURCE = b"Source"
_KEYS = frozenset({_PACKAGE, _STATUS, _VERSION, _ARCH, _SOURCE})
# First bytes of the keys above: lets the parser skip most lines without splitting them.
_KEY_STARTS = frozenset(key[0] for key in _KEYS)


def stanzas(data: bytes) -> list[dict[bytes, bytes]]:
    """The Package/Status/Version/Architecture/Source fields of each RFC 822-like stanza.

    Like Go's textproto (which Clair uses): continuation lines are ignored for these
    single-line fields, values are trimmed, and the first occurrence of a key wins.
    """
    out: list[dict[bytes, bytes]] = []
    for block in data.split(b"\n\n"):
        fields: dict[bytes, bytes] = {}
        for line in block.split(b"\n"):
            if not line or line[0] not in _KEY_STARTS:
                continue
            key, sep, value = line.partition(b":")
            if sep and key in _KEYS and key not in fields:
                fields[key] = value.strip()
        if fields:
            out.append(fields)
    return out


def _text(fields: dict[bytes, bytes], key: bytes) -> str:
    return fields.get(key, b"").decode("utf-8", "replace")


def _is_installed(status: bytes) -> bool:
    words = status.split()
    return b"ok" in words and b"installed" in words


def parse_status(data: bytes, package_db: str) -> list[Package]:
    """Installed packages of one dpkg `status` file, in file order (last binary name wins)."""
    binaries: dict[str, Package] = {}
    sources: dict[str, Package] = {}
    for fields in stanzas(data):
        if not _is_installed(fields.get(_STATUS, b"")):
            continue
        name = _text(fields, _PACKAGE)
        version = _text(fields, _VERSION)
        source_field = _text(fields, _SOURCE)
        if source_field:
            src_name, sep, src_version = source_field.partition(" ")
            src_version = src_version.strip("()") if sep else version
            source = sources.get(src_name)
            if source is None:
                source = Package(
                    name=src_name, version=src_version, kind="source", package_db=package_db
                )
                sources[src_name] = source
        else:
            source = Package(name=name, version=version, kind="source", package_db=package_db)
        binaries[name] = Package(  # keyed by name as in Clair: a later stanza replaces it
            name=name,
            version=version,
            kind="binary",
            source=source,
            arch=_text(fields, _ARCH),
            package_db=package_db,
        )
    return list(binaries.values())


def parse_status_d_file(data: bytes, package_db: str) -> list[Package]:
    """Packages of one distroless `status.d` file: every stanza, no Status check."""
    out = []
    for fields in stanzas(data):
        version = _text(fields, _VERSION)
        source_field = _text(fields, _SOURCE)
        source = (
            Package(name=source_field, version=version, kind="source", package_db=package_db)
            if source_field
            else None
        )
        out.append(
            Package(
                name=_text(fields, _PACKAGE),
                version=version,
                kind="binary",
                source=source,
                arch=_text(fields, _ARCH),
                package_db=package_db,
            )
        )
    return out


def _sort_key(pkg: Package) -> tuple[str, str]:
    return (pkg.name, pkg.version)


class DpkgScanner(Scanner):
    name: ClassVar[str] = "dpkg"
    version: ClassVar[str] = "6"
    kind: ClassVar[str] = "package"
    ecosystem: ClassVar[str] = "dpkg"

    def wants(self, path: str) -> bool:
        return path.endswith(STATUS_SUFFIX) and (
            len(path) == len(STATUS_SUFFIX) or path[-len(STATUS_SUFFIX) - 1] == "/"
        )

    def scan(self, layer: LayerFiles) -> ScanResult:
        packages: list[Package] = []
        for path in sorted(layer.files):
            if self.wants(path):
                packages.extend(parse_status(layer.files[path], path))
        packages.sort(key=_sort_key)
        return ScanResult(packages=packages)


def is_status_d_entry(path: str) -> bool:
    """A file directly inside a directory named `status.d` (md5sums files excluded)."""
    if _STATUS_D not in path or path.endswith(".md5sums"):
        return False
    parent, _, _ = path.rpartition("/")
    return parent == _STATUS_D or parent.endswith("/" + _STATUS_D)


class DistrolessScanner(Scanner):
    name: ClassVar[str] = "dpkg-distroless"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "package"
    ecosystem: ClassVar[str] = "dpkg"

    def wants(self, path: str) -> bool:
        return is_status_d_entry(path)

    def scan(self, layer: LayerFiles) -> ScanResult:
        packages: list[Package] = []
        for path in sorted(layer.files):
            if is_status_d_entry(path):
                packages.extend(parse_status_d_file(layer.files[path], path))
        return ScanResult(packages=packages)
