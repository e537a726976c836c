"""rpm's own "ndb" backend (`Packages.db`), layout from rpm `lib/backend/ndb/rpmpkg.c`.

All integers are little-endian. The file starts with slot pages (4096 bytes each):
- bytes 0-31 are the database header: magic "RpmP", version 0, generation, number of slot
  pages, next package index;
- the rest are 16-byte slots: magic "Slot", package index, blob offset and blob size, both in
  16-byte blocks; a slot with offset 0 is free.
A blob is: header (magic "BlbS", package index, generation, data length), the data (an rpm
header), zero padding to the block size, and a 12-byte tail (adler32 of everything before the
tail, data length, magic "BlbE").

Hostile input: every slot and blob is checked against the file size, the header and tail must
agree, and the checksum must match, so a blob claiming a huge length is rejected before any
copy is made.
"""

from __future__ import annotations

import struct
import zlib

from .header import RpmDBError

MAGIC = b"RpmP"
_SLOT_MAGIC = b"Slot"
_BLOB_MAGIC = b"BlbS"
_TAIL_MAGIC = b"BlbE"
_PAGE_SIZE = 4096
_DB_HEADER_SIZE = 32
_SLOT_SIZE = 16
_BLOCK_SIZE = 16
_BLOB_HEAD_SIZE = 16
_BLOB_TAIL_SIZE = 12
_QUAD = struct.Struct("<4sIII")  # magic, then three little-endian u32
_TAIL = struct.Struct("<II4s")


def is_ndb(data: bytes) -> bool:
    return data.startswith(MAGIC)


def _blob(data: bytes, index: int, block_offset: int, block_count: int) -> bytes:
    start = block_offset * _BLOCK_SIZE
    size = block_count * _BLOCK_SIZE
    if size < _BLOB_HEAD_SIZE + _BLOB_TAIL_SIZE or start + size > len(data):
        raise RpmDBError(f"ndb package {index}: blob at {start}+{size} outside the file")
    magic, blob_index, _generation, length = _QUAD.unpack_from(data, start)
    if magic != _BLOB_MAGIC:
        raise RpmDBError(f"ndb package {index}: bad blob magic {magic!r}")
    if blob_index != index:
        raise RpmDBError(f"ndb package {index}: blob belongs to package {blob_index}")
    if _BLOB_HEAD_SIZE + length + _BLOB_TAIL_SIZE > size:
        raise RpmDBError(f"ndb package {index}: blob length {length} exceeds its {size} bytes")
    tail_at = start + size - _BLOB_TAIL_SIZE
    checksum, tail_length, tail_magic = _TAIL.unpack_from(data, tail_at)
    if tail_magic != _TAIL_MAGIC or tail_length != length:
        raise RpmDBError(f"ndb package {index}: bad blob tail")
    if zlib.adler32(data[start:tail_at]) != checksum:
        raise RpmDBError(f"ndb package {index}: blob checksum mismatch")
    data_at = start + _BLOB_HEAD_SIZE
    return data[data_at : data_at + length]


def header_blobs(data: bytes) -> list[bytes]:
    """Every used slot's header blob, in slot order."""
    if len(data) < _DB_HEADER_SIZE or not is_ndb(data):
        raise RpmDBError("not an ndb Packages.db (bad magic)")
    _magic, version, _generation, slot_pages = _QUAD.unpack_from(data)
    if version != 0:
        raise RpmDBError(f"ndb version {version} is not supported")
    slots_end = slot_pages * _PAGE_SIZE
    if slot_pages == 0 or slots_end > len(data):
        raise RpmDBError(f"ndb claims {slot_pages} slot pages, file has {len(data)} bytes")
    slots: list[tuple[int, int, int]] = []
    seen: set[int] = set()
    for at in range(_DB_HEADER_SIZE, slots_end, _SLOT_SIZE):
        magic, index, block_offset, block_count = _QUAD.unpack_from(data, at)
        if magic != _SLOT_MAGIC:
            raise RpmDBError(f"ndb slot at {at}: bad magic {magic!r}")
        if block_offset == 0:
            continue
        if index in seen:
            raise RpmDBError(f"ndb package {index} has two slots")
        seen.add(index)
        slots.append((block_offset, block_count, index))
    # Blobs live after the slot pages and never overlap: checking that keeps the checksum
    # work within the file size even when slots are forged.
    end = slots_end // _BLOCK_SIZE
    for block_offset, block_count, index in sorted(slots):
        if block_offset < end:
            raise RpmDBError(f"ndb package {index}: blob overlaps the slots or another blob")
        end = block_offset + block_count
    return [_blob(data, index, offset, count) for offset, count, index in slots]
