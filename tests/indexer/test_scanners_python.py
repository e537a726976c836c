"""python scanner: real wheel METADATA, claircore's bad-version layer, Clair's own pep440 output."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from clair_common.models import Repository
from clair_indexer.scanners import PythonScanner
from clair_indexer.scanners.python import parse_pep440, read_headers
from tests.indexer.test_scanners_base import Layer, layer_from_dir, layer_of

WHEELS = "layers/pypi-wheels-dist-info"
SITE = "usr/local/lib/python3.8/site-packages"
PYPI = Repository(name="pypi", uri="https://pypi.org/simple")


def test_eight_wheels(shared_data: Path) -> None:
    result = PythonScanner().scan(layer_from_dir(shared_data / WHEELS, [PythonScanner()]))
    got = {(p.name, p.version) for p in result.packages}
    assert got == {
        ("django", "3.2"),
        ("flask", "0.12"),
        ("jinja2", "2.10"),
        ("werkzeug", "0.15.3"),
        ("certifi", "2019.11.28"),
        ("idna", "2.7"),
        ("requests", "2.19.1"),
        ("urllib3", "1.24.1"),
    }
    assert result.repositories == [PYPI]
    by_name = {p.name: p for p in result.packages}
    requests = by_name["requests"]
    assert requests.kind == "binary"
    assert requests.package_db == f"python:{SITE}"
    assert requests.filepath == f"{SITE}/requests-2.19.1.dist-info/METADATA"
    assert requests.repository_hint == "https://pypi.org/simple"
    assert requests.normalized_version == "pep440:0.2.19.1.0.0.0.0.0.0"
    assert by_name["certifi"].normalized_version == "pep440:0.2019.11.28.0.0.0.0.0.0"


def test_bad_version_layer_yields_nothing(shared_data: Path) -> None:
    tar_path = shared_data / "layers/claircore/python/testdata/layer-with-bad-version.tar"
    layer = Layer()
    with tarfile.open(tar_path) as tar:
        for member in tar:
            f = tar.extractfile(member) if member.isfile() else None
            if f is not None and PythonScanner().wants(member.name):
                layer.files[member.name] = f.read()
    assert any(p.endswith(".egg-info/PKG-INFO") for p in layer.files)
    result = PythonScanner().scan(layer)
    assert result.packages == []
    assert result.repositories == []


def test_versions_as_clair_reported_them(shared_data: Path) -> None:
    """Clair's own index report of a real image holds pep440 normalized versions."""
    report = shared_data / "other/claircore/datastore/postgres/testdata"
    doc = json.loads((report / "docker.io-mitmproxy-mitmproxy-4.0.1.index.json").read_text())
    seen = 0
    for pkg in doc["packages"].values():
        if pkg["normalized_version"].startswith("pep440:"):
            assert parse_pep440(pkg["version"]) == (pkg["version"], pkg["normalized_version"])
            seen += 1
    assert seen == 29


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1.0", ("1.0", "pep440:0.1.0.0.0.0.0.0.0.0")),
        ("2!1.0.post2", ("2!1.0.post2", "pep440:2.1.0.0.0.0.0.0.2.0")),
        ("1.0rc1", ("1.0rc1", "pep440:0.1.0.0.0.0.-1.1.0.0")),
        ("1.0-1", ("1.0.post1", "pep440:0.1.0.0.0.0.0.0.1.0")),
        ("1.0b2.dev3", ("1.0b2.dev3", "pep440:0.1.0.0.0.0.-2.2.0.-3")),
        ("1.0.dev3", ("1.0.dev3", f"pep440:0.1.0.0.0.0.{-(2**31) + 3}.0.0.0")),
        ("1.2.3.4.5.6", ("1.2.3.4.5.6", "pep440:0.1.2.3.4.5.0.0.0.0")),
        ("1.0+local.7", ("1.0", "pep440:0.1.0.0.0.0.0.0.0.0")),
        ("v1.0alpha1", ("1.0a0", "pep440:0.1.0.0.0.0.-3.0.0.0")),  # "a" wins the alternation
        ("xxx", None),
        ("", None),
    ],
)
def test_pep440_like_claircore(text: str, want: tuple[str, str] | None) -> None:
    assert parse_pep440(text) == want


def test_headers_like_textproto() -> None:
    data = (
        b"Metadata-Version: 2.1\nNAME: Foo_Bar\nVersion: 1.0\nName: other\n"
        b"License: a\n b\n\nName: body\n"
    )
    assert read_headers(data) == {
        "metadata-version": "2.1",
        "name": "Foo_Bar",
        "version": "1.0",
        "license": "a b",
    }
    assert read_headers(b"Name: x\nnot a header\nVersion: 1\n") == {"name": "x"}


def test_egg_kinds_installer_and_distro_trees() -> None:
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: 1.0\n"
    files = {
        "app/lib/a.egg-info/PKG-INFO": meta.format("A"),
        "app/lib/b.egg-info": meta.format("B"),
        "app/lib/c.egg/EGG-INFO/PKG-INFO": meta.format("C"),
        "app/lib/d.dist-info/METADATA": meta.format("D"),
        "app/lib/e.dist-info/METADATA": meta.format("E"),
        "app/lib/e.dist-info/INSTALLER": "rpm\n",
        "app/lib/.wh.f.egg-info": meta.format("F"),
        "usr/lib/python3/dist-packages/g.dist-info/METADATA": meta.format("G"),
        "usr/lib64/python3.9/site-packages/h.dist-info/METADATA": meta.format("H"),
    }
    scanner = PythonScanner()
    assert all(scanner.wants(p) for p in files)
    got = {p.name: p.package_db for p in scanner.scan(layer_of(files)).packages}
    assert got == {
        "a": "python:app/lib",
        "b": "python:app/lib",
        "c": "python:app/lib/c.egg",
        "d": "python:app/lib",
        "g": "python:usr/lib/python3/dist-packages",
        "h": "python:usr/lib64/python3.9/site-packages",
    }
    # With the distribution's package database in the same layer, its python trees are skipped.
    with_dpkg = layer_of({**files, "var/lib/dpkg/status": ""})
    assert "g" not in {p.name for p in scanner.scan(with_dpkg).packages}
    with_rpm = layer_of({**files, "var/lib/rpm/rpmdb.sqlite": b"SQLite format 3\x00"})
    names = {p.name for p in scanner.scan(with_rpm).packages}
    assert "h" not in names
    assert "g" in names
