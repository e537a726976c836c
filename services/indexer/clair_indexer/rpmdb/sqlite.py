"""rpm's sqlite backend (`rpmdb.sqlite`): header blobs in `Packages(hnum, blob)`.

The bytes are opened in memory with `Connection.deserialize`, never written to disk. rpm keeps
its database in WAL mode, which an in-memory image cannot use, so the two journal-mode bytes
of the file header are set back to "rollback journal" first (the -wal file, if any, is not
part of the image anyway). A hostile file cannot run for long or allocate much: the statement
is aborted after a fixed number of VM steps and value sizes are limited.
"""

from __future__ import annotations

import sqlite3

from .header import MAX_DATA_LENGTH, RpmDBError

MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_WRITE_VERSION_OFFSET = 18  # bytes 18/19: 1 = rollback journal, 2 = WAL
# Progress handler granularity and budget: 5M VM steps (~0.1 s). A real rpmdb needs under 10
# per row, so MAX_PACKAGES rows fit with room to spare.
_STEPS_PER_CALL = 10_000
_MAX_CALLS = 500
MAX_PACKAGES = 200_000

_QUERY = "SELECT hnum, blob FROM Packages ORDER BY hnum ASC"


def is_sqlite(data: bytes) -> bool:
    return data.startswith(MAGIC)


def _in_memory_image(data: bytes) -> bytes:
    if len(data) < _HEADER_SIZE or not is_sqlite(data):
        raise RpmDBError("not an sqlite database (bad magic)")
    if data[_WRITE_VERSION_OFFSET : _WRITE_VERSION_OFFSET + 2] == b"\x02\x02":
        image = bytearray(data)
        image[_WRITE_VERSION_OFFSET : _WRITE_VERSION_OFFSET + 2] = b"\x01\x01"
        return bytes(image)
    return data


def _check_schema(conn: sqlite3.Connection) -> None:
    """`Packages` must be a plain table: a view, virtual table or generated column could run
    arbitrary (and arbitrarily slow) SQL when read."""
    row = conn.execute("SELECT type, sql FROM sqlite_master WHERE name = 'Packages'").fetchone()
    if row is None or row[0] != "table":
        raise RpmDBError("sqlite rpmdb has no Packages table")
    if str(row[1]).lstrip().upper().startswith("CREATE VIRTUAL"):
        raise RpmDBError("sqlite rpmdb Packages is a virtual table")
    # table_xinfo's last column "hidden" is 2 or 3 for generated columns.
    if any(col[-1] for col in conn.execute("PRAGMA table_xinfo('Packages')")):
        raise RpmDBError("sqlite rpmdb Packages has generated or hidden columns")


def header_blobs(data: bytes) -> list[bytes]:
    """Each row's header blob, in `hnum` order."""
    image = _in_memory_image(data)
    conn = sqlite3.connect(":memory:")
    try:
        calls = 0

        def budget() -> int:
            nonlocal calls
            calls += 1
            return 1 if calls > _MAX_CALLS else 0  # non-zero aborts the statement

        conn.set_progress_handler(budget, _STEPS_PER_CALL)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_DATA_LENGTH)
        try:
            conn.deserialize(image)
            conn.execute("PRAGMA trusted_schema = OFF")
            _check_schema(conn)
            blobs: list[bytes] = []
            for hnum, blob in conn.execute(_QUERY):
                if len(blobs) >= MAX_PACKAGES:
                    raise RpmDBError(f"sqlite rpmdb has more than {MAX_PACKAGES} packages")
                if not isinstance(blob, bytes):
                    raise RpmDBError(f"sqlite rpmdb row {hnum}: blob is {type(blob).__name__}")
                blobs.append(blob)
            return blobs
        except (sqlite3.Error, OverflowError, MemoryError) as exc:
            reason = "query budget exceeded" if calls > _MAX_CALLS else str(exc)
            raise RpmDBError(f"unreadable sqlite rpmdb: {reason}") from exc
    finally:
        conn.close()
