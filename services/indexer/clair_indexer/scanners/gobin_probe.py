"""Reads a Go executable's build information as the layer streams by (see base.FileProbe).

The Go linker writes a 32-byte header starting `\\xff Go buildinf:` (16-byte aligned) into a
writable segment: byte 14 is the pointer size, byte 15 the flags (bit 0: big endian; bit 1:
the strings follow inline, Go 1.18+). Inline: two uvarint-length-prefixed strings after the
header, the toolchain version and the module information. Before Go 1.18: two pointers after
the first 16 bytes, each the address of a Go string header (data pointer, length) in the
writable data, whose bytes sit in the read-only data before it.

Streaming: the segment table comes from the file's head, and the probe asks only for the
writable segments (searched for the header, kept: a few percent of a binary) and, for the old
format's look-back, the first `retain` bytes of the read-only data of files that carry a Go
build ID note, copied into one buffer per thread. Code segments are skipped, not fed; a file
that is not an executable costs its first chunk.
"""

from __future__ import annotations

import logging
import threading
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
# Read-only bytes kept for the old format (Go 1.13-1.17 keep both strings in the first few
# MiB of .rodata); writable bytes kept, for the header and the old format's string headers.
DEFAULT_RETAIN = 8 << 20
MAX_WRITABLE = 64 << 20
# The ELF note the Go linker writes (type 4, name "Go"), in either byte order.
_GO_NOTES = (b"\x04\x00\x00\x00Go\x00\x00", b"\x00\x00\x00\x04Go\x00\x00")

_scratch = threading.local()


def _scratch_buffer(size: int) -> bytearray:
    """A per-thread buffer of at least `size` bytes, reused by the probes of one thread (a
    layer is read by one thread, one file at a time) so kept bytes cost no fresh pages."""
    buf: bytearray | None = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < size:
        buf = bytearray(size)
        _scratch.buf = buf
    return buf


def _has_go_note(head: bytes, layout: Layout) -> bool:
    """Whether a PT_NOTE segment within the head holds the Go linker's build ID note."""
    for offset, size in layout.notes:
        notes = head[offset : offset + min(size, 4096)]
        if any(note in notes for note in _GO_NOTES):
            return True
    return False


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
    # What is wanted, as sorted (start, end, kind) file ranges: "w" writable (searched and
    # kept), "r" read-only (kept in the scratch buffer).
    _ranges: list[tuple[int, int, str]] = field(default_factory=list)
    _pieces: list[tuple[int, memoryview]] = field(default_factory=list)  # (offset, kept bytes)
    _scratch: bytearray | None = None
    _scratch_used: int = 0
    _writable_kept: int = 0
    _carry: bytes = b""  # the tail of the last writable bytes searched (a header may straddle)
    _carry_at: int = 0
    _header_at: int | None = None
    _found: tuple[str, str] | None = None
    _problem: str | None = None

    def feed(self, offset: int, chunk: memoryview) -> int:
        if self._layout is not None:
            return self._consume(offset, chunk)
        if offset == 0 and len(chunk) >= 4 and not is_executable_magic(bytes(chunk[:4])):
            return PROBE_DONE
        if not self._read_head(chunk):
            return offset + len(chunk)
        if self._layout is None:
            return PROBE_DONE
        # The head arrived in pieces before the layout was known: go over it again, then on.
        head = len(self._head)
        if self._consume(0, memoryview(self._head)) == PROBE_DONE:
            return PROBE_DONE
        rest = head - offset
        if rest < len(chunk):
            return self._consume(head, chunk[rest:])
        return self._next_wanted(offset + len(chunk))

    def _consume(self, offset: int, chunk: memoryview) -> int:
        try:
            self._keep(offset, chunk)
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
        self._pieces.clear()  # the scratch buffer is free for the next file
        if self._problem is not None:
            log.info("gobin: %s skipped: %s", self.path, self._problem)
            return None
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
            layout = parse_layout(head, self.size)
        except BadExecutable as exc:
            self._problem = str(exc)
            return True
        writable = layout.writable()
        if not writable:
            return True  # nothing could hold build information
        self._layout = layout
        ranges = [(s.offset, s.offset + s.size, "w") for s in writable]
        go_note = layout.format != "elf" or _has_go_note(head, layout)
        budget = self.retain if go_note else 0
        for seg in layout.read_only():
            keep = min(seg.size, budget)
            if keep:
                ranges.append((seg.offset, seg.offset + keep, "r"))
                budget -= keep
        self._ranges = sorted(ranges)
        if budget != (self.retain if go_note else 0):
            self._scratch = _scratch_buffer(self.retain - budget)
        return True

    # -- keeping bytes -----------------------------------------------------------------------

    def _keep(self, offset: int, chunk: memoryview) -> None:
        end = offset + len(chunk)
        for start, stop, kind in self._ranges:
            lo, hi = max(start, offset), min(stop, end)
            if lo >= hi:
                continue
            part = chunk[lo - offset : hi - offset]
            if kind == "w":
                self._writable_kept += hi - lo
                if self._writable_kept > MAX_WRITABLE:
                    raise _Bad(f"writable segments over {MAX_WRITABLE} bytes")
                self._pieces.append((lo, memoryview(bytes(part))))
            else:
                assert self._scratch is not None
                at = self._scratch_used
                self._scratch[at : at + len(part)] = part
                self._scratch_used += len(part)
                self._pieces.append((lo, memoryview(self._scratch)[at : at + len(part)]))

    def _read(self, offset: int, length: int) -> bytes:
        """`length` bytes at `offset`; raises _Need when they have not been fed yet and
        _Bad when they were not kept or lie outside the file."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise _Bad(f"build information points outside the file (offset {offset})")
        if length == 0:
            return b""
        parts = []
        want, end = offset, offset + length
        for start, piece in self._pieces:
            stop = start + len(piece)
            if stop <= want:
                continue
            if start > want:
                break
            part = piece[want - start : min(stop, end) - start]
            parts.append(bytes(part))
            want += len(part)
            if want == end:
                return b"".join(parts)
        fed = self._pieces[-1][0] + len(self._pieces[-1][1]) if self._pieces else 0
        if self._wanted_at(want) == want and want >= fed:
            raise _Need
        raise _Bad(f"build information at offset {want} is beyond the look-back window")

    def _wanted_at(self, position: int) -> int | None:
        """The first wanted offset at or after `position`, or None."""
        for start, stop, _ in self._ranges:
            if position < stop:
                return max(start, position)
        return None

    def _next_wanted(self, position: int) -> int:
        if self._header_at is None:
            nxt = self._wanted_at(position)
            return PROBE_DONE if nxt is None else nxt
        return position  # decoding: whatever follows may hold the strings

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
