"""Reads a Go executable's build information as the layer streams by (see base.FileProbe).

The Go linker writes a 32-byte header starting `\\xff Go buildinf:` (16-byte aligned) into a
writable segment: byte 14 is the pointer size, byte 15 the flags (bit 0: big endian; bit 1:
the strings follow inline, Go 1.18+). Inline: two uvarint-length-prefixed strings after the
header, the toolchain version and the module information. Before Go 1.18: two pointers after
the first 16 bytes, each the address of a Go string header (data pointer, length) whose data
usually sits in the read-only segment before.

Streaming: the segment table comes from the file's head; only writable segments are searched
for the header (a few percent of a binary). Bytes before it are kept as views of the reader's
chunks, not copies, up to `retain` bytes, so the old format can look back at no cost to the
new one. Non-Go files cost a header parse and nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import orjson

from .base import PROBE_DONE
from .gobin_exe import HEAD_SIZE, BadExecutable, Layout, is_executable_magic, parse_layout

log = logging.getLogger("clair.indexer.scanners.gobin")

MAGIC = b"\xff Go buildinf:"
HEADER_SIZE = 32
_ALIGN = 16
_FLAG_BIG_ENDIAN = 0x1
_FLAG_INLINE = 0x2
# Longest version / module-information string accepted (Go's own reader allows 64 KiB for
# the version; real module lists reach a few hundred KiB).
MAX_STRING = 4 << 20
# Bytes of the file kept for the old format's look-back; beyond, only the inline format works.
DEFAULT_RETAIN = 96 << 20


class _Need(Exception):
    """The bytes asked for have not streamed by yet."""


class _Bad(Exception):
    """The build information is malformed: the message is the reason."""


@dataclass(slots=True)
class BuildInfoProbe:
    """One file's probe; `result()` is JSON `{"go": version, "mod": module info}` or None."""

    path: str
    size: int
    retain: int = DEFAULT_RETAIN
    _head: bytearray = field(default_factory=bytearray)
    _layout: Layout | None = None
    _views: list[tuple[int, memoryview]] = field(default_factory=list)  # (file offset, bytes)
    _kept: int = 0
    _dropped_before: int = 0  # views below this offset were released (over `retain`)
    _carry: bytes = b""  # the tail of the last writable bytes searched (a header may straddle)
    _carry_at: int = 0
    _header_at: int | None = None
    _found: tuple[str, str] | None = None
    _problem: str | None = None

    def feed(self, offset: int, chunk: memoryview) -> int:
        if self._layout is None:
            if offset == 0 and len(chunk) >= 4 and not is_executable_magic(bytes(chunk[:4])):
                return PROBE_DONE
            self._keep(offset, chunk)
            if not self._read_head(chunk):
                return offset + len(chunk)
            if self._layout is None:
                return PROBE_DONE
        else:
            self._keep(offset, chunk)
        try:
            if self._header_at is None:
                self._search(offset, chunk)
            if self._header_at is not None:
                self._found = self._decode(self._header_at)
                return PROBE_DONE
        except _Need:
            pass
        except _Bad as exc:
            self._problem = str(exc)
            return PROBE_DONE
        return self._next_wanted(offset + len(chunk))

    def result(self) -> bytes | None:
        if self._found is None and self._problem is None and self._header_at is not None:
            self._problem = "build information cut short by the end of the file"
        if self._problem is not None:
            log.info("gobin: %s skipped: %s", self.path, self._problem)
            return None
        self._views.clear()
        if self._found is None:
            return None  # not a Go executable
        version, modinfo = self._found
        return orjson.dumps({"go": version, "mod": modinfo})

    # -- head and segment table ------------------------------------------------------------

    def _read_head(self, chunk: memoryview) -> bool:
        """Collects the head; True once the layout is known (or found unusable)."""
        want = min(HEAD_SIZE, self.size) - len(self._head)
        self._head += chunk[:want]
        if len(self._head) < min(HEAD_SIZE, self.size):
            return False
        head = bytes(self._head)
        if not is_executable_magic(head):
            return True
        try:
            self._layout = parse_layout(head, self.size)
        except BadExecutable as exc:
            self._problem = str(exc)
            return True
        if not self._layout.writable():
            self._layout = None  # nothing could hold build information
        return True

    # -- keeping bytes -----------------------------------------------------------------------

    def _keep(self, offset: int, chunk: memoryview) -> None:
        self._views.append((offset, chunk))
        self._kept += len(chunk)
        while self._kept > self.retain and len(self._views) > 1:
            start, dropped = self._views.pop(0)
            self._kept -= len(dropped)
            self._dropped_before = start + len(dropped)

    def _read(self, offset: int, length: int) -> bytes:
        """`length` bytes at `offset`; raises _Need when they have not been fed yet and
        _Bad when they were released or lie outside the file."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise _Bad(f"build information points outside the file (offset {offset})")
        if offset < self._dropped_before:
            raise _Bad(f"build information at offset {offset} is beyond the look-back window")
        parts = []
        want, end = offset, offset + length
        for start, view in self._views:
            stop = start + len(view)
            if stop <= want or start >= end:
                continue
            if start > want:
                raise _Bad(f"bytes at offset {want} were not kept")
            piece = view[want - start : min(stop, end) - start]
            parts.append(bytes(piece))
            want += len(piece)
            if want == end:
                return b"".join(parts)
        if length == 0:
            return b""
        raise _Need

    def _next_wanted(self, position: int) -> int:
        """Everything is fed (and kept) until the header is found: the old format may need
        any of it. Past the last writable segment without a header, nothing more is needed."""
        assert self._layout is not None
        if self._header_at is None:
            last = self._layout.writable()[-1]
            if position >= last.offset + last.size:
                return PROBE_DONE
        return position

    # -- finding and decoding the header -------------------------------------------------------

    def _search(self, offset: int, chunk: memoryview) -> None:
        assert self._layout is not None
        end = offset + len(chunk)
        for seg in self._layout.writable():
            lo, hi = max(seg.offset, offset), min(seg.offset + seg.size, end)
            if lo >= hi:
                continue
            data = bytes(chunk[lo - offset : hi - offset])
            base = lo
            if self._carry and self._carry_at + len(self._carry) == lo:
                data, base = self._carry + data, self._carry_at
            at = data.find(MAGIC)
            while at >= 0:
                vaddr = seg.vaddr + (base + at - seg.offset)
                if vaddr % _ALIGN == 0:
                    self._header_at = base + at
                    return
                at = data.find(MAGIC, at + 1)
            self._carry = data[-(len(MAGIC) - 1) :]
            self._carry_at = base + len(data) - len(self._carry)

    def _decode(self, at: int) -> tuple[str, str]:
        header = self._read(at, HEADER_SIZE)
        ptr_size, flags = header[14], header[15]
        if flags & _FLAG_INLINE:
            version, after = self._inline_string(at + HEADER_SIZE)
            modinfo, _ = self._inline_string(after)
        else:
            if ptr_size not in (4, 8):
                raise _Bad(f"build information has pointer size {ptr_size}")
            order = "big" if flags & _FLAG_BIG_ENDIAN else "little"
            version = self._pointed_string(header, 16, ptr_size, order)
            modinfo = self._pointed_string(header, 16 + ptr_size, ptr_size, order)
        return _text(version, "Go version"), _text(_strip_sentinels(modinfo), "module information")

    def _inline_string(self, at: int) -> tuple[bytes, int]:
        length, shift, pos = 0, 0, at
        while True:
            byte = self._read(pos, 1)[0]
            pos += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise _Bad("malformed string length in build information")
        if length > MAX_STRING:
            raise _Bad(f"build information string of {length} bytes")
        return self._read(pos, length), pos + length

    def _pointed_string(self, header: bytes, at: int, ptr_size: int, order: str) -> bytes:
        assert self._layout is not None
        address = int.from_bytes(header[at : at + ptr_size], order)  # type: ignore[arg-type]
        where = self._layout.file_offset(address, 2 * ptr_size)
        if where is None:
            raise _Bad(f"string header address {address:#x} is not in the file")
        raw = self._read(where, 2 * ptr_size)
        data = int.from_bytes(raw[:ptr_size], order)  # type: ignore[arg-type]
        length = int.from_bytes(raw[ptr_size:], order)  # type: ignore[arg-type]
        if length > MAX_STRING:
            raise _Bad(f"build information string of {length} bytes")
        if length == 0:
            return b""
        start = self._layout.file_offset(data, length)
        if start is None:
            raise _Bad(f"string data address {data:#x} is not in the file")
        return self._read(start, length)


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Bad(f"{what} is not UTF-8") from None


def _strip_sentinels(modinfo: bytes) -> bytes:
    """The linker wraps module information in 16 bytes on each side (debug/buildinfo)."""
    if len(modinfo) >= 33 and modinfo[-17] == 0x0A:
        return modinfo[16:-16]
    return modinfo
