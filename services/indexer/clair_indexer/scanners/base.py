"""The scanner interface: a scanner names the paths it wants, then parses their bytes.

The layer reader walks each tar once and calls `wants` for every regular file path, so `wants`
must stay a few set lookups or suffix checks. `scan` gets only the wanted files of one layer
(plus every symlink of that layer) and does no I/O of its own.
"""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from collections.abc import Mapping
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
