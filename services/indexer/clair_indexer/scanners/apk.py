"""apk's installed database `lib/apk/db/installed` (claircore `alpine/packagescanner.go`).

Records are separated by a blank line; each line is `<letter>:<value>`. Clair reads
P (name), V (version), A (arch), c (commit, kept as the repository hint) and o (origin, the
source package). Quirks kept on purpose: only lines ending in a newline are read (so the last
line of a record, which carries no newline after splitting on the blank line, is ignored), and
one source object is made per origin name, carrying the version of the first binary that
named it (or no version when `o:` came before `V:`).  Records without a `P:` name are
dropped (Clair would report a nameless package for garbage).
"""

from __future__ import annotations

from typing import ClassVar

from clair_common.models import Package

from .base import LayerFiles, Scanner, ScanResult

INSTALLED = "lib/apk/db/installed"


def parse_installed(data: bytes, package_db: str = INSTALLED) -> list[Package]:
    packages: list[Package] = []
    sources: dict[str, Package] = {}
    for record in data.split(b"\n\n"):
        if not record:
            continue
        pkg = Package(kind="binary", package_db=package_db)
        lines = record.split(b"\n")
        for line in lines[:-1]:  # the last piece has no trailing newline: Clair skips it
            if not line:
                continue
            value = line[2:].strip().decode("utf-8", "replace")
            match line[0]:
                case 0x50:  # P
                    pkg.name = value
                case 0x56:  # V
                    pkg.version = value
                case 0x63:  # c
                    pkg.repository_hint = value
                case 0x41:  # A
                    pkg.arch = value
                case 0x6F:  # o
                    source = sources.get(value)
                    if source is None:
                        source = Package(name=value, version=pkg.version, kind="source")
                        sources[value] = source
                    pkg.source = source
        if pkg.name:  # a record without `P:` (garbage, a torn file) names no package
            packages.append(pkg)
    return packages


class ApkScanner(Scanner):
    name: ClassVar[str] = "apk"
    version: ClassVar[str] = "v0.0.1"
    kind: ClassVar[str] = "package"
    ecosystem: ClassVar[str] = "alpine"

    def wants(self, path: str) -> bool:
        return path == INSTALLED

    def scan(self, layer: LayerFiles) -> ScanResult:
        data = layer.files.get(INSTALLED)
        if not data:
            return ScanResult()
        return ScanResult(packages=parse_installed(data))
