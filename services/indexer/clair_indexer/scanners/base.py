"""The scanner interface: a scanner names the paths it wants, then parses their bytes.

The layer reader walks each tar once and calls `wants` for every regular file path, so `wants`
must stay a few set lookups or suffix checks. `scan` gets only the wanted files of one layer
(plus every symlink of that layer) and does no I/O of its own.

Files that cannot be chosen by path (executables anywhere in the tree) are reached through
`probe`: for each regular file no scanner wanted, the reader asks the scanners that probe
(`probes = True`) with the path, size and mode; a returned `FileProbe` is fed the file's bytes
as the layer streams by, skipping what it does not ask for, and what it distils is handed to
`scan` as `layer.probed[path]`. Nothing is kept but that distillate.
"""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from clair_common.models import Distribution, Package, Repository

# Symlink chains longer than this are treated as loops (Linux allows 40 per lookup).
_MAX_LINK_HOPS = 40


class LayerFiles(Protocol):
    """The wanted regular files and all symlinks of one layer, keyed by normalized path."""

    @property
    def files(self) -> Mapping[str, bytes]: ...

    @property
    def symlinks(self) -> Mapping[str, str]: ...

    @property
    def probed(self) -> Mapping[str, bytes]:
        """What probes distilled from files they were fed, keyed by path."""
        ...


# What `FileProbe.feed` returns when it needs nothing more of the file.
PROBE_DONE = -1


class FileProbe(Protocol):
    """Reads one file as it streams by; must not raise on hostile bytes (it notes a reason)."""

    def feed(self, offset: int, chunk: memoryview) -> int:
        """`chunk` is the file's bytes at `offset`; returns the next offset it wants
        (bytes before it are skipped, not fed) or PROBE_DONE. The chunk's memory belongs
        to the reader: copy what must outlive the call, or keep the view (it stays valid)."""
        ...

    def result(self) -> bytes | None:
        """Called once after the last feed: the distillate for `scan`, or None."""
        ...


@dataclass(slots=True)
class ScanResult:
    packages: list[Package] = field(default_factory=list)
    distributions: list[Distribution] = field(default_factory=list)
    repositories: list[Repository] = field(default_factory=list)


class Scanner(ABC):
    """One scanner: Clair's name and kind, our own version, and the coalescing ecosystem."""

    name: ClassVar[str]
    version: ClassVar[str]
    kind: ClassVar[str]  # "package" | "distribution" | "repository"
    ecosystem: ClassVar[str]  # "dpkg", "alpine", "rpm", "rhel", "python"

    @abstractmethod
    def wants(self, path: str) -> bool:
        """Whether the layer reader should keep this regular file for `scan`."""

    @abstractmethod
    def scan(self, layer: LayerFiles) -> ScanResult:
        """Parse the wanted files of one layer."""

    # Whether the layer reader should offer unwanted regular files to `probe`.
    probes: ClassVar[bool] = False

    def probe(self, path: str, size: int, mode: int) -> FileProbe | None:
        """A reader for this file, or None; called per file, so decide on size and mode."""
        return None


def detector(scanner: Scanner) -> str:
    """Clair's detector URN for packages found by `scanner`."""
    return f"urn:claircore:detector:{scanner.name}:{scanner.version}:{scanner.kind}"


def normalize_path(path: str) -> str:
    """Layer-relative form: no leading slash, no `.`/`..` segments ("" is the root)."""
    norm = posixpath.normpath("/" + path).lstrip("/")
    return "" if norm == "." else norm


def resolve(layer: LayerFiles, path: str) -> str | None:
    """Follow symlinks (in the path and its parents) within the layer.

    Returns the final normalized path, or None on a loop. The result need not exist.
    """
    links = layer.symlinks
    parts = normalize_path(path).split("/")
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        candidate = "/".join([*done, part]) if done else part
        target = links.get(candidate)
        if target is None:
            done.append(part)
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS:
            return None
        base = "" if target.startswith("/") else "/".join(done)
        joined = normalize_path(posixpath.join("/" + base, target))
        parts = [p for p in joined.split("/") if p] + parts
        done = []
    return "/".join(done)


def read_file(layer: LayerFiles, path: str) -> bytes | None:
    """The bytes at `path` after following the layer's symlinks, or None if not wanted/absent."""
    data = layer.files.get(path)
    if data is not None:
        return data
    real = resolve(layer, path)
    if real is None or real == path:
        return None
    return layer.files.get(real)


def exists(layer: LayerFiles, path: str) -> bool:
    """Whether `path` is a wanted file or a symlink in this layer."""
    return path in layer.files or path in layer.symlinks


def probe_chain(scanners: Sequence[Scanner]) -> Callable[[str, int, int], FileProbe | None] | None:
    """The layer reader's `prober` for these scanners (the first probe offered wins), or None
    when none of them probes, so the reader pays nothing per file."""
    probing = [s for s in scanners if s.probes]
    if not probing:
        return None
    if len(probing) == 1:
        return probing[0].probe

    def prober(path: str, size: int, mode: int) -> FileProbe | None:
        for scanner in probing:
            found = scanner.probe(path, size, mode)
            if found is not None:
                return found
        return None

    return prober
