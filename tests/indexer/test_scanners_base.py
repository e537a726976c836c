"""Scanner interface helpers, the default set, and the layer builder the scanner tests share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clair_indexer.scanners import Scanner, ScanResult, default_scanners, detector
from clair_indexer.scanners.base import exists, normalize_path, read_file, resolve


@dataclass
class Layer:
    """A layer as the reader hands it over: wanted files plus every symlink."""

    files: dict[str, bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    probed: dict[str, bytes] = field(default_factory=dict)


def layer_from_dir(
    root: Path, scanners: Iterable[Scanner], symlinks: Mapping[str, str] | None = None
) -> Layer:
    """Read a directory tree the way the layer reader does: keep only what a scanner wants."""
    wanted = list(scanners)
    layer = Layer(symlinks=dict(symlinks or {}))
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            layer.symlinks[rel] = str(path.readlink())
        elif path.is_file() and any(s.wants(rel) for s in wanted):
            layer.files[rel] = path.read_bytes()
    return layer


def layer_of(files: Mapping[str, bytes | str], symlinks: Mapping[str, str] | None = None) -> Layer:
    return Layer(
        files={k: v.encode() if isinstance(v, str) else v for k, v in files.items()},
        symlinks=dict(symlinks or {}),
    )


def test_default_scanner_names_kinds_and_ecosystems() -> None:
    got = {(s.name, s.kind, s.ecosystem) for s in default_scanners()}
    assert got == {
        ("dpkg", "package", "dpkg"),
        ("dpkg-distroless", "package", "dpkg"),
        ("debian", "distribution", "dpkg"),
        ("ubuntu", "distribution", "dpkg"),
        ("apk", "package", "alpine"),
        ("alpine", "distribution", "alpine"),
        ("rhel", "distribution", "rhel"),
        ("aws", "distribution", "rpm"),
        ("oracle", "distribution", "rpm"),
        ("suse", "distribution", "rpm"),
        ("photon", "distribution", "rpm"),
        ("rpm", "package", "rpm"),
        ("rhel-repository-scanner", "repository", "rhel"),
        ("rhel_containerscanner", "package", "rhcc"),
        ("rhel_package_container_detector", "package", "rhcc"),
        ("python", "package", "python"),
        ("gobin", "package", "gobin"),
    }
    assert all(s.version for s in default_scanners())


def test_detector_urn() -> None:
    dpkg = next(s for s in default_scanners() if s.name == "dpkg")
    assert detector(dpkg) == f"urn:claircore:detector:dpkg:{dpkg.version}:package"


def test_empty_layer_finds_nothing() -> None:
    for scanner in default_scanners():
        assert scanner.scan(Layer()) == ScanResult()


@pytest.mark.parametrize(
    ("path", "want"),
    [("/etc/os-release", "etc/os-release"), ("a/./b/../c", "a/c"), ("/", ""), ("../x", "x")],
)
def test_normalize_path(path: str, want: str) -> None:
    assert normalize_path(path) == want


def test_symlinks_relative_absolute_chained_and_in_parents() -> None:
    layer = layer_of(
        {"usr/lib/os-release": "ID=x\n", "usr/lib/apk/db/installed": "P:a\n"},
        {
            "etc/os-release": "../usr/lib/os-release",
            "etc/alt": "/etc/os-release",
            "lib": "usr/lib",
            "loop1": "loop2",
            "loop2": "/loop1",
        },
    )
    assert read_file(layer, "etc/os-release") == b"ID=x\n"
    assert read_file(layer, "etc/alt") == b"ID=x\n"
    assert read_file(layer, "lib/apk/db/installed") == b"P:a\n"
    assert resolve(layer, "loop1") is None
    assert read_file(layer, "loop1/x") is None
    assert read_file(layer, "etc/missing") is None
    assert exists(layer, "etc/os-release")
    assert not exists(layer, "etc/redhat-release")
