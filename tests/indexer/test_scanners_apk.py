"""apk scanner against real Alpine databases; the oracle reads the P:/V:/A:/o: records directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from clair_indexer.scanners import ApkScanner
from clair_indexer.scanners.apk import INSTALLED, parse_installed
from tests.indexer.test_scanners_base import layer_from_dir

IMAGES = [
    "layers/alpine-3.6.0-docker",
    "layers/alpine-3.14.0-minirootfs",
    "layers/alpine-3.15.0-armv7",
    "layers/alpine-3.16.0-armv7",
]


def records(db: bytes) -> list[dict[str, str]]:
    """Oracle: one dict per record, from lines of the form `X:value`."""
    out = []
    for record in db.decode().split("\n\n"):
        fields: dict[str, str] = {}
        for line in record.splitlines():
            if len(line) > 1 and line[1] == ":":
                fields.setdefault(line[0], line[2:])
        if "P" in fields:
            out.append(fields)
    return out


@pytest.mark.parametrize("image", IMAGES)
def test_installed_matches_records(shared_data: Path, image: str) -> None:
    db = (shared_data / image / INSTALLED).read_bytes()
    want = records(db)
    assert want
    layer = layer_from_dir(shared_data / image, [ApkScanner()])
    pkgs = ApkScanner().scan(layer).packages
    assert [(p.name, p.version, p.arch) for p in pkgs] == [(r["P"], r["V"], r["A"]) for r in want]
    for pkg, rec in zip(pkgs, want, strict=True):
        assert pkg.kind == "binary"
        assert pkg.package_db == INSTALLED
        assert pkg.source is not None
        assert (pkg.source.name, pkg.source.kind) == (rec["o"], "source")
        assert pkg.repository_hint == rec.get("c", "")


def test_origin_shared_between_subpackages(shared_data: Path) -> None:
    db = (shared_data / "layers/alpine-3.14.0-minirootfs" / INSTALLED).read_bytes()
    pkgs = {p.name: p for p in parse_installed(db)}
    assert pkgs["libcrypto1.1"].source is pkgs["libssl1.1"].source
    source = pkgs["libssl1.1"].source
    assert source is not None
    assert source.name == "openssl"
    assert source.version == pkgs["libcrypto1.1"].version  # the first binary's version


def test_clair_quirks() -> None:
    db = b"P:early\no:base\nV:1.0-r0\nZ:x\n\nP:late\nV:2.0-r0\no:base\nZ:y\n\nP:last\nV:3\no:tail"
    early, late, last = parse_installed(db)
    assert early.source is late.source
    assert early.source is not None
    assert early.source.version == ""  # o: came before V: in the record that named it first
    # The final line of a record has no newline after splitting, so Clair never reads it.
    assert last.source is None


def test_wants_only_the_database() -> None:
    scanner = ApkScanner()
    assert scanner.wants(INSTALLED)
    assert not scanner.wants("lib/apk/db/triggers")
