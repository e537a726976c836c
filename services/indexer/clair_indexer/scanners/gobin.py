"""Go executables (claircore `gobin`): the toolchain and modules a binary was built from.

Any regular file with an execute bit, between `MIN_SIZE` and `max_size` bytes, is probed as
it streams by (gobin_probe.py): ELF, PE and Mach-O files are read for the build information
the Go linker embeds; everything else is dropped after its first bytes. Per Go executable:
`stdlib` at the toolchain's version (`go1.19.8`), the main module, and every dependency
module, a `=>` replacement standing in for the module it replaces (the replacement's path and
version are what was compiled in; a directory replacement has no version). As in claircore,
package_db is `go:` + the binary's path, the normalized version `semver:` with major, minor,
patch, and a main module built from a checkout is `(devel)` with its VCS stamp.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import orjson

from clair_common.models import Package, Repository
from clair_common.versions import semver

from .base import FileProbe, LayerFiles, Scanner, ScanResult
from .gobin_probe import BuildInfoProbe

log = logging.getLogger("clair.indexer.scanners.gobin")

GO_URI = "https://pkg.go.dev/"
GO = Repository(name="go", uri=GO_URI)
MIN_SIZE = 1024
DEFAULT_MAX_SIZE = 1 << 30
_EXECUTE_BITS = 0o111


@dataclass(frozen=True, slots=True)
class Module:
    path: str
    version: str


@dataclass(slots=True)
class BuildInfo:
    go_version: str
    main: Module | None
    deps: list[Module]
    settings: list[tuple[str, str]]


def parse_modinfo(go_version: str, text: str) -> BuildInfo:
    """runtime/debug's module information text: `path`, `mod`, `dep`, `=>`, `build` lines."""
    info = BuildInfo(go_version, None, [], [])
    last: str | None = None  # "mod" or "dep": what a following "=>" replaces
    for line in text.split("\n"):
        fields = line.split("\t")
        kind = fields[0]
        if kind in ("mod", "dep") and len(fields) >= 3:
            module = Module(fields[1], fields[2])
            if kind == "mod":
                info.main = module
            else:
                info.deps.append(module)
            last = kind
        elif kind == "=>" and len(fields) >= 3 and last is not None:
            replacement = Module(fields[1], fields[2])
            if last == "mod":
                info.main = replacement
            else:
                info.deps[-1] = replacement
            last = None
        elif kind == "build" and len(fields) >= 2:
            key, _, value = "\t".join(fields[1:]).partition("=")
            info.settings.append((key, value.strip('"')))
    return info


def _devel_version(settings: list[tuple[str, str]]) -> str:
    """claircore's `(devel)` with the VCS stamp the go command records."""
    parts = []
    for key, value in settings:
        if key == "vcs":
            parts.append(value)
        elif key == "vcs.revision":
            parts.append(("commit " if len(value) in (40, 64) else "rev ") + value)
        elif key == "vcs.time":
            parts.append("built at " + value)
        elif key == "vcs.modified" and value == "true":
            parts.append("dirty")
    return f"(devel) ({', '.join(parts)})" if parts else "(devel)"


def _normalized(version: str) -> str:
    try:
        return semver.normalized(version)
    except ValueError:
        return ""


def binary_packages(path: str, info: BuildInfo) -> list[Package]:
    db = "go:" + path
    toolchain = semver.toolchain_semver(info.go_version)

    def package(name: str, version: str, normalized: str) -> Package:
        return Package(
            name=name,
            version=version,
            kind="binary",
            normalized_version=normalized,
            package_db=db,
            repository_hint=GO_URI,
            filepath=path,
        )

    out = [package("stdlib", info.go_version, _normalized(toolchain) if toolchain else "")]
    if info.main is not None and info.main.path:
        version = info.main.version
        if version == "(devel)":
            version = _devel_version(info.settings)
        out.append(package(info.main.path, version, _normalized(info.main.version)))
    out.extend(package(d.path, d.version, _normalized(d.version)) for d in info.deps)
    return out


class GoBinaryScanner(Scanner):
    name: ClassVar[str] = "gobin"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "package"
    ecosystem: ClassVar[str] = "gobin"
    probes: ClassVar[bool] = True

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size

    def wants(self, path: str) -> bool:
        return False

    def probe(self, path: str, size: int, mode: int) -> FileProbe | None:
        if not mode & _EXECUTE_BITS or not MIN_SIZE <= size <= self.max_size:
            return None
        return BuildInfoProbe(path, size)

    def scan(self, layer: LayerFiles) -> ScanResult:
        packages: list[Package] = []
        for path in sorted(layer.probed, key=lambda p: p.split("/")):
            try:
                found = orjson.loads(layer.probed[path])
                info = parse_modinfo(str(found["go"]), str(found["mod"]))
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                log.info("gobin: %s skipped: unreadable build information (%s)", path, exc)
                continue
            packages.extend(binary_packages(path, info))
        repositories = [Repository(name=GO.name, uri=GO.uri)] if packages else []
        return ScanResult(packages=packages, repositories=repositories)
