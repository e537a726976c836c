"""Hostile rpm databases: damaged copies of the real ones must fail with RpmDBError, quickly.

Every read here is timed: garbage must be rejected in well under 2 s, and no other
exception type may escape. Hypothesis mutates the real files and header blobs at random.
"""

from __future__ import annotations

import sqlite3
import struct
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clair_indexer.rpmdb import RpmDBError, header_blobs, package_from_header, read_packages

LAYERS = "layers"
SQLITE_AL2023 = f"{LAYERS}/amazonlinux-2023-rpm-go-rpmdb/var/lib/rpm/rpmdb.sqlite"
SQLITE_MARINER = f"{LAYERS}/cbl-mariner-2.0-rpm-go-rpmdb/var/lib/rpm/rpmdb.sqlite"
NDB_SLE15 = f"{LAYERS}/sle15-bci-rpm-go-rpmdb/var/lib/rpm/Packages.db"
BDB_LIBUUID = f"{LAYERS}/libuuid-bdb-rpm-go-rpmdb/var/lib/rpm/Packages"
ALL_DBS = [SQLITE_AL2023, SQLITE_MARINER, NDB_SLE15, BDB_LIBUUID]
LIMIT_S = 2.0
BDB_PAGE = 4096


def outcome(read: Callable[[], object]) -> str:
    """Run `read` under the time bound; "ok" or "rejected", any other exception fails."""
    start = time.perf_counter()
    try:
        read()
        result = "ok"
    except RpmDBError:
        result = "rejected"
    elapsed = time.perf_counter() - start
    assert elapsed < LIMIT_S, f"took {elapsed:.2f}s"
    return result


def rejects(data: bytes) -> str:
    start = time.perf_counter()
    with pytest.raises(RpmDBError) as info:
        read_packages(data)
    assert time.perf_counter() - start < LIMIT_S
    return str(info.value)


@pytest.fixture(scope="module")
def dbs(shared_data: Path) -> dict[str, bytes]:
    return {name: (shared_data / name).read_bytes() for name in ALL_DBS}


@pytest.mark.parametrize("name", ALL_DBS)
def test_truncated_and_garbage(dbs: dict[str, bytes], name: str) -> None:
    data = dbs[name]
    for cut in (len(data) // 2, len(data) // 3, 200, 40, 9, 0):
        rejects(data[:cut])
    rejects(data[:16] + bytes(range(256)) * 40)  # right magic, garbage after it
    garbage = bytes((i * 7919 + 13) % 251 for i in range(len(data)))
    rejects(garbage)


@pytest.mark.parametrize("name", ALL_DBS)
def test_byte_flips_never_escape(dbs: dict[str, bytes], name: str) -> None:
    data = dbs[name]
    for step in range(1, 40):
        damaged = bytearray(data)
        for pos in range(step * 131, len(data), len(data) // 8 + step):
            damaged[pos] ^= 0xFF
        outcome(partial(read_packages, bytes(damaged)))


def _bdb_overflow_pages(data: bytes) -> list[int]:
    return [n for n in range(1, len(data) // BDB_PAGE) if data[n * BDB_PAGE + 25] == 7]


def _set_u32(data: bytearray, at: int, value: int, order: str = "<") -> None:
    struct.pack_into(order + "I", data, at, value)


def test_bdb_overflow_chain_cycles(dbs: dict[str, bytes]) -> None:
    data = dbs[BDB_LIBUUID]
    chain = _bdb_overflow_pages(data)
    assert len(chain) > 2
    looped = bytearray(data)
    _set_u32(looped, chain[1] * BDB_PAGE + 16, chain[1])  # a page pointing at itself
    assert "cycle" in rejects(bytes(looped))
    back = bytearray(data)
    _set_u32(back, chain[-1] * BDB_PAGE + 16, chain[0])  # last page back to the first
    assert "cycle" in rejects(bytes(back))


def test_bdb_forged_fields(dbs: dict[str, bytes]) -> None:
    data = dbs[BDB_LIBUUID]
    cases: list[tuple[int, int]] = [
        (32, 0xFFFFFFFF),  # last page number beyond the file
        (20, 1000),  # page size not a power of two
        (chain_next := _bdb_overflow_pages(data)[0] * BDB_PAGE + 16, 0x7FFFFFFF),
    ]
    for at, value in cases:
        forged = bytearray(data)
        _set_u32(forged, at, value)
        rejects(bytes(forged))
    encrypted = bytearray(data)
    encrypted[24] = 1
    assert "encrypted" in rejects(bytes(encrypted))
    wrong_type = bytearray(data)
    wrong_type[(chain_next // BDB_PAGE) * BDB_PAGE + 25] = 5
    rejects(bytes(wrong_type))
    hash_page = next(n for n in range(1, 23) if data[n * BDB_PAGE + 25] in (2, 13))
    odd = bytearray(data)
    struct.pack_into("<H", odd, hash_page * BDB_PAGE + 20, 3)
    assert "odd" in rejects(bytes(odd))
    wild = bytearray(data)
    struct.pack_into("<H", wild, hash_page * BDB_PAGE + 26, 0xFFFF)
    rejects(bytes(wild))


def _ndb_first_slot(data: bytes) -> int:
    return next(at for at in range(32, 4096, 16) if struct.unpack_from("<I", data, at + 8)[0])


def test_ndb_forged_fields(dbs: dict[str, bytes]) -> None:
    data = dbs[NDB_SLE15]
    slot = _ndb_first_slot(data)
    blob_at = struct.unpack_from("<I", data, slot + 8)[0] * 16
    huge = bytearray(data)
    _set_u32(huge, blob_at + 12, 0x7FFFFFFF)  # blob claims 2 GiB
    assert "length" in rejects(bytes(huge))
    checksum = bytearray(data)
    checksum[blob_at + 100] ^= 1
    assert "checksum" in rejects(bytes(checksum))
    pages = bytearray(data)
    _set_u32(pages, 12, 0xFFFFFFFF)
    rejects(bytes(pages))
    twin = bytearray(data)
    twin[slot + 16 : slot + 32] = twin[slot : slot + 16]  # two slots, one blob
    rejects(bytes(twin))
    offset = bytearray(data)
    _set_u32(offset, slot + 8, 0xFFFFFFF0)
    rejects(bytes(offset))


def test_header_index_count_2_pow_31(dbs: dict[str, bytes]) -> None:
    blob = header_blobs(dbs[SQLITE_MARINER])[0]
    for il in (1 << 31, (1 << 31) - 1, 0x10000, 0):
        with pytest.raises(RpmDBError):
            package_from_header(struct.pack(">I", il) + blob[4:])
    with pytest.raises(RpmDBError):
        package_from_header(blob[:4] + struct.pack(">I", 0xFFFFFFFF) + blob[8:])
    with pytest.raises(RpmDBError):
        package_from_header(blob[:-1])


def _sqlite_image(setup: str) -> bytes:
    conn = sqlite3.connect(":memory:")
    conn.executescript(setup)
    image = conn.serialize()
    conn.close()
    return image


@pytest.mark.parametrize(
    "setup",
    [
        "CREATE TABLE other (x);",
        # A view that never ends: the reader must refuse views and bound the query anyway.
        "CREATE VIEW Packages AS WITH RECURSIVE r(hnum, blob) AS "
        "(SELECT 1, x'00' UNION ALL SELECT hnum + 1, blob FROM r) SELECT * FROM r;",
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB);"
        "INSERT INTO Packages VALUES (1, 'text, not a blob');",
        # Generated columns run SQL on every read (here: a 60 MB blob per row).
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob AS (zeroblob(60000000)));"
        "INSERT INTO Packages (hnum) VALUES (1);",
        "CREATE VIRTUAL TABLE Packages USING rtree(hnum, blob, x);",
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB);"
        "INSERT INTO Packages VALUES (1, x'0000000100000000');",
    ],
)
def test_sqlite_forged_schemas(setup: str) -> None:
    rejects(_sqlite_image(setup))


def test_sqlite_query_budget_stops_huge_sort() -> None:
    # Without an INTEGER PRIMARY KEY, ORDER BY hnum sorts every row before the first comes
    # back: 1.2M rows cost more VM steps than the budget allows, so no row is ever read.
    image = _sqlite_image(
        "CREATE TABLE Packages (hnum, blob);"
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1200000) "
        "INSERT INTO Packages SELECT -n, x'00' FROM r;"
    )
    assert "budget" in rejects(image)


def test_sqlite_row_cap() -> None:
    image = _sqlite_image(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB);"
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 200001) "
        "INSERT INTO Packages SELECT n, x'00' FROM r;"
    )
    assert "more than" in rejects(image)


def test_empty_packages_table_is_empty() -> None:
    image = _sqlite_image("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB);")
    assert read_packages(image) == []


# Hypothesis: random damage to real files and blobs never escapes as another exception.

_mutations = st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), max_size=8)


def _mutate(data: bytes, changes: list[tuple[int, int]], hot: int) -> bytes:
    """Overwrite bytes; even positions land in the first `hot` bytes (the structures)."""
    out = bytearray(data)
    for i, (pos, value) in enumerate(changes):
        out[pos % (hot if i % 2 == 0 else len(out))] = value
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(blob=st.binary(max_size=600))
def test_fuzz_header_arbitrary_bytes(blob: bytes) -> None:
    outcome(lambda: package_from_header(blob))


@settings(max_examples=300, deadline=None)
@given(changes=_mutations, cut=st.integers(0, 64))
def test_fuzz_header_mutated_real_blob(
    dbs: dict[str, bytes], changes: list[tuple[int, int]], cut: int
) -> None:
    blob = header_blobs(dbs[BDB_LIBUUID])[0]
    il = struct.unpack_from(">I", blob)[0]
    damaged = _mutate(blob, changes, 8 + 16 * il)
    outcome(lambda: package_from_header(damaged[: len(damaged) - cut]))


@settings(max_examples=150, deadline=None)
@given(changes=_mutations)
def test_fuzz_bdb(dbs: dict[str, bytes], changes: list[tuple[int, int]]) -> None:
    data = dbs[BDB_LIBUUID]
    # Hot area: the page headers and item offsets of every page, folded into page starts.
    out = bytearray(data)
    for i, (pos, value) in enumerate(changes):
        page = pos % (len(data) // BDB_PAGE)
        at = page * BDB_PAGE + pos % 64 if i % 2 == 0 else pos % len(data)
        out[at] = value
    outcome(lambda: read_packages(bytes(out)))


@settings(max_examples=150, deadline=None)
@given(changes=_mutations)
def test_fuzz_ndb(dbs: dict[str, bytes], changes: list[tuple[int, int]]) -> None:
    damaged = _mutate(dbs[NDB_SLE15], changes, 4096)
    outcome(lambda: read_packages(damaged))


@settings(max_examples=40, deadline=None)
@given(changes=_mutations)
def test_fuzz_sqlite(dbs: dict[str, bytes], changes: list[tuple[int, int]]) -> None:
    damaged = _mutate(dbs[SQLITE_MARINER], changes, 100)
    outcome(lambda: read_packages(damaged))
