"""rpm's Berkeley DB backend (`Packages`): a BDB hash database of header blobs.

Facts from libdb's `dbinc/db_page.h` (and claircore `internal/rpm/bdb`):
- page 0 is the hash meta page (HMETA): magic 0x00061561 at byte 12 in the file's byte order
  (either), page size at 20, encryption algorithm at 24, page type 8 at 25, last page number
  at 32;
- every page starts with a 26-byte PAGE header: page number at 8, next page at 16, entry
  count at 20, `hf_offset` at 22, page type at 25;
- hash pages (type 2 unsorted, 13 sorted) hold `entries` 16-bit item offsets after the
  header, paired key/data; a data item whose first byte is 3 (H_OFFPAGE) points at an
  overflow chain: page number at +4, total length at +8;
- overflow pages (type 7) carry `hf_offset` bytes of the value each, linked by next page.
Like claircore, only off-page values are read: rpm headers never fit inline, while the
inline record under key 0 is rpm's instance counter, not a package.

Hostile input: page numbers are checked against the file, an overflow page may be read only
once in the whole file (which catches cycles and chains shared between items, and bounds the
work by the file size), and values are capped.
"""

from __future__ import annotations

import struct

from .header import MAX_DATA_LENGTH, RpmDBError

HASH_MAGIC = 0x00061561
_META_SIZE = 512
_PAGE_HEADER = 26
_PAGETYPE_HASH_UNSORTED = 2
_PAGETYPE_OVERFLOW = 7
_PAGETYPE_HASH_META = 8
_PAGETYPE_HASH = 13
_H_OFFPAGE = 3
_HOFFPAGE_SIZE = 12


def byte_order(data: bytes) -> str | None:
    """ "<" or ">" if `data` starts with a BDB hash meta page, else None."""
    if len(data) < 16:
        return None
    for order in ("<", ">"):
        if struct.unpack_from(order + "I", data, 12)[0] == HASH_MAGIC:
            return order
    return None


class _Reader:
    def __init__(self, data: bytes) -> None:
        order = byte_order(data)
        if order is None or len(data) < _META_SIZE:
            raise RpmDBError("not a Berkeley DB hash database (bad magic)")
        self.data = data
        self.order = order
        self.u16 = struct.Struct(order + "H")
        self.u32 = struct.Struct(order + "I")
        self.page_size = self.u32.unpack_from(data, 20)[0]
        if data[24] != 0:
            raise RpmDBError("encrypted Berkeley DB databases are not supported")
        if data[25] != _PAGETYPE_HASH_META:
            raise RpmDBError(f"Berkeley DB meta page has type {data[25]}, want hash meta")
        if self.page_size not in {512 << i for i in range(8)}:
            raise RpmDBError(f"Berkeley DB page size {self.page_size} is not supported")
        self.last_page = self.u32.unpack_from(data, 32)[0]
        if (self.last_page + 1) * self.page_size > len(data):
            raise RpmDBError(
                f"Berkeley DB truncated: {self.last_page + 1} pages of {self.page_size} bytes "
                f"need more than the {len(data)} bytes present"
            )
        self.seen_overflow: set[int] = set()

    def page(self, number: int) -> bytes:
        start = number * self.page_size
        return self.data[start : start + self.page_size]

    def item_offsets(self, page: bytes, number: int) -> tuple[int, ...]:
        entries = self.u16.unpack_from(page, 20)[0]
        if entries % 2:
            raise RpmDBError(f"Berkeley DB page {number}: odd item count {entries}")
        index_end = _PAGE_HEADER + 2 * entries
        if index_end > self.page_size:
            raise RpmDBError(f"Berkeley DB page {number}: {entries} items do not fit")
        offsets: tuple[int, ...] = struct.unpack_from(f"{self.order}{entries}H", page, _PAGE_HEADER)
        for offset in offsets:
            if not index_end <= offset < self.page_size:
                raise RpmDBError(f"Berkeley DB page {number}: item offset {offset} out of page")
        return offsets

    def overflow_value(self, first_page: int, length: int) -> bytes:
        if length > MAX_DATA_LENGTH:
            raise RpmDBError(f"Berkeley DB value of {length} bytes is too large")
        parts: list[bytes] = []
        have = 0
        number = first_page
        while number != 0:
            if not 0 < number <= self.last_page:
                raise RpmDBError(f"Berkeley DB overflow page {number} out of range")
            if number in self.seen_overflow:
                raise RpmDBError(f"Berkeley DB overflow page {number} reached twice (cycle)")
            self.seen_overflow.add(number)
            page = self.page(number)
            if page[25] != _PAGETYPE_OVERFLOW:
                raise RpmDBError(f"Berkeley DB page {number} has type {page[25]}, want overflow")
            size = self.u16.unpack_from(page, 22)[0]
            if size > self.page_size - _PAGE_HEADER or have + size > length:
                raise RpmDBError(f"Berkeley DB overflow page {number} holds {size} bytes")
            parts.append(page[_PAGE_HEADER : _PAGE_HEADER + size])
            have += size
            number = self.u32.unpack_from(page, 16)[0]
        if have != length:
            raise RpmDBError(f"Berkeley DB overflow chain has {have} of {length} bytes")
        return b"".join(parts)

    def values(self) -> list[bytes]:
        out: list[bytes] = []
        for number in range(1, self.last_page + 1):
            page = self.page(number)
            if page[25] not in (_PAGETYPE_HASH_UNSORTED, _PAGETYPE_HASH):
                continue
            offsets = self.item_offsets(page, number)
            for data_offset in offsets[1::2]:
                if page[data_offset] != _H_OFFPAGE:
                    continue
                if data_offset + _HOFFPAGE_SIZE > self.page_size:
                    raise RpmDBError(f"Berkeley DB page {number}: off-page item cut short")
                first = self.u32.unpack_from(page, data_offset + 4)[0]
                length = self.u32.unpack_from(page, data_offset + 8)[0]
                out.append(self.overflow_value(first, length))
        return out


def header_blobs(data: bytes) -> list[bytes]:
    """Every off-page value of the hash database, in page order."""
    return _Reader(data).values()
