"""Read installed-package lists from rpm databases with our own code (no librpm).

Three backends share one header blob format (`header.py`): sqlite `rpmdb.sqlite`, Berkeley
DB `Packages` and ndb `Packages.db`. Input is treated as hostile: anything that cannot be
read raises `RpmDBError` (a `ValueError`), never another exception, and work is bounded by
the input size.
"""

from __future__ import annotations

import os
from typing import Literal

from . import bdb, ndb, sqlite
from .header import RpmDBError, RpmPackage, package_from_header, parse_header

DBKind = Literal["sqlite", "bdb", "ndb"]
KINDS: tuple[DBKind, ...] = ("sqlite", "bdb", "ndb")

# The file name each backend uses, as claircore's FindDBs matches them.
FILE_NAMES: dict[str, DBKind] = {
    "rpmdb.sqlite": "sqlite",
    "Packages": "bdb",
    "Packages.db": "ndb",
}

__all__ = [
    "FILE_NAMES",
    "KINDS",
    "DBKind",
    "RpmDBError",
    "RpmPackage",
    "detect_kind",
    "header_blobs",
    "package_from_header",
    "parse_header",
    "read_packages",
]


def detect_kind(data: bytes) -> DBKind | None:
    """The backend whose magic `data` starts with, or None."""
    if sqlite.is_sqlite(data):
        return "sqlite"
    if ndb.is_ndb(data):
        return "ndb"
    if bdb.byte_order(data) is not None:
        return "bdb"
    return None


def header_blobs(data: bytes, kind: DBKind | None = None) -> list[bytes]:
    """The raw header blob of every package record."""
    if kind is None:
        kind = detect_kind(data)
        if kind is None:
            raise RpmDBError("not an rpm database: no sqlite, ndb or Berkeley DB magic")
    if kind == "sqlite":
        return sqlite.header_blobs(data)
    if kind == "bdb":
        return bdb.header_blobs(data)
    if kind == "ndb":
        return ndb.header_blobs(data)
    raise ValueError(f"unknown rpm database kind {kind!r}")


def read_packages(
    source: bytes | str | os.PathLike[str], kind: DBKind | None = None
) -> list[RpmPackage]:
    """Every header in the database (gpg-pubkey entries included), in storage order.

    `source` is the file's bytes or its path; `kind` None detects the backend by magic.
    """
    if isinstance(source, bytes):
        data = source
    else:
        try:
            with open(source, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise RpmDBError(f"cannot read rpm database {source}: {exc}") from exc
    return [package_from_header(blob) for blob in header_blobs(data, kind)]
