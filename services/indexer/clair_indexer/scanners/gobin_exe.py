"""Where an executable's bytes load in memory: the segment table of ELF, PE and Mach-O files.

Go's build information is found through this table (debug/buildinfo does the same): the
`\\xff Go buildinf:` header lies in a writable segment, and the old format points from there
to strings elsewhere by virtual address. Only the file's head is read (the table sits at its
start in all three formats); anything malformed raises `BadExecutable` with the reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# The part of a file the table must fit in; real tables take a few hundred bytes.
HEAD_SIZE = 64 << 10
_MAX_SEGMENTS = 4096

ELF_MAGIC = b"\x7fELF"
PE_MAGIC = b"MZ"
MACHO_MAGICS = frozenset(
    (b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe")
)


class BadExecutable(ValueError):
    """The file claims to be an executable but its headers do not hold together."""


@dataclass(frozen=True, slots=True)
class Segment:
    vaddr: int
    offset: int  # file offset of the segment's first byte
    size: int  # bytes present in the file
    writable: bool
    executable: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    format: str  # "elf" | "pe" | "macho"
    segments: tuple[Segment, ...]
    notes: tuple[tuple[int, int], ...] = ()  # ELF PT_NOTE (file offset, size)

    def file_offset(self, vaddr: int, length: int) -> int | None:
        """The file offset of `length` bytes at `vaddr`, when one segment holds them all."""
        for seg in self.segments:
            if seg.vaddr <= vaddr and vaddr + length <= seg.vaddr + seg.size:
                return seg.offset + (vaddr - seg.vaddr)
        return None

    def writable(self) -> list[Segment]:
        return sorted((s for s in self.segments if s.writable and s.size), key=lambda s: s.offset)

    def read_only(self) -> list[Segment]:
        """Segments neither writable nor executable (read-only data), in file order."""
        return sorted(
            (s for s in self.segments if not s.writable and not s.executable and s.size),
            key=lambda s: s.offset,
        )


def is_executable_magic(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC or head[:2] == PE_MAGIC or head[:4] in MACHO_MAGICS


def parse_layout(head: bytes, file_size: int) -> Layout:
    """The segment table of an executable whose first bytes are `head` (up to HEAD_SIZE)."""
    notes: list[tuple[int, int]] = []
    if head[:4] == ELF_MAGIC:
        segments = _elf(head, notes)
        fmt = "elf"
    elif head[:2] == PE_MAGIC:
        segments = _pe(head)
        fmt = "pe"
    elif head[:4] in MACHO_MAGICS:
        segments = _macho(head)
        fmt = "macho"
    else:
        raise BadExecutable("not an ELF, PE or Mach-O file")
    for seg in segments:
        if seg.offset + seg.size > file_size:
            raise BadExecutable(
                f"segment at file offset {seg.offset} ({seg.size} bytes) runs past the"
                f" end of the {file_size}-byte file"
            )
    return Layout(fmt, tuple(segments), tuple(notes))


def _unpack(fmt: str, head: bytes, offset: int, what: str) -> tuple[int, ...]:
    if offset < 0 or offset + struct.calcsize(fmt) > len(head):
        raise BadExecutable(f"{what} at offset {offset} is beyond the first {len(head)} bytes")
    return struct.unpack_from(fmt, head, offset)


def _elf(head: bytes, notes: list[tuple[int, int]]) -> list[Segment]:
    if len(head) < 52:
        raise BadExecutable("ELF header cut short")
    klass, data = head[4], head[5]
    if klass not in (1, 2) or data not in (1, 2):
        raise BadExecutable(f"unknown ELF class {klass} or byte order {data}")
    order = "<" if data == 1 else ">"
    if klass == 2:
        (phoff,) = _unpack(order + "Q", head, 0x20, "ELF header")
        phentsize, phnum = _unpack(order + "HH", head, 0x36, "ELF header")
        entry, want = order + "IIQQQQQQ", 56
    else:
        (phoff,) = _unpack(order + "I", head, 0x1C, "ELF header")
        phentsize, phnum = _unpack(order + "HH", head, 0x2A, "ELF header")
        entry, want = order + "IIIIIIII", 32
    if phnum == 0:
        raise BadExecutable("ELF file has no program headers")
    if phentsize < want or phnum > _MAX_SEGMENTS:
        raise BadExecutable(f"ELF program header table of {phnum} x {phentsize} bytes")
    segments = []
    for i in range(phnum):
        fields = _unpack(entry, head, phoff + i * phentsize, "ELF program header")
        if klass == 2:
            p_type, flags, offset, vaddr, _, filesz, _, _ = fields
        else:
            p_type, offset, vaddr, _, filesz, _, flags, _ = fields
        if p_type == 1:  # PT_LOAD
            segments.append(Segment(vaddr, offset, filesz, bool(flags & 2), bool(flags & 1)))
        elif p_type == 4:  # PT_NOTE
            notes.append((offset, filesz))
    return segments


_IMAGE_SCN_MEM_WRITE = 0x80000000


def _pe(head: bytes) -> list[Segment]:
    (pe_at,) = _unpack("<I", head, 0x3C, "PE header offset")
    if head[pe_at : pe_at + 4] != b"PE\0\0":
        raise BadExecutable("MZ file without a PE signature")
    nsections, opt_size = _unpack("<2xH12xH", head, pe_at + 4, "COFF header")
    opt_at = pe_at + 24
    (magic,) = _unpack("<H", head, opt_at, "PE optional header")
    if magic == 0x10B:
        (image_base,) = _unpack("<I", head, opt_at + 28, "PE optional header")
    elif magic == 0x20B:
        (image_base,) = _unpack("<Q", head, opt_at + 24, "PE optional header")
    else:
        raise BadExecutable(f"unknown PE optional header magic {magic:#x}")
    if nsections > _MAX_SEGMENTS:
        raise BadExecutable(f"PE file claims {nsections} sections")
    table = opt_at + opt_size
    segments = []
    for i in range(nsections):
        vsize, vaddr, raw_size, raw_at, flags = _unpack(
            "<8xIIII12xI", head, table + 40 * i, "PE section header"
        )
        size = min(vsize, raw_size) if vsize else raw_size
        if raw_at and size:
            writable, executable = bool(flags & _IMAGE_SCN_MEM_WRITE), bool(flags & 0x20000000)
            segments.append(Segment(image_base + vaddr, raw_at, size, writable, executable))
    return segments


def _macho(head: bytes) -> list[Segment]:
    magic = head[:4]
    order = ">" if magic in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf") else "<"
    is64 = magic in (b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe")
    ncmds, _ = _unpack(order + "II", head, 16, "Mach-O header")
    if ncmds > _MAX_SEGMENTS:
        raise BadExecutable(f"Mach-O file claims {ncmds} load commands")
    at = 32 if is64 else 28
    segments = []
    for _ in range(ncmds):
        cmd, size = _unpack(order + "II", head, at, "Mach-O load command")
        if size < 8:
            raise BadExecutable(f"Mach-O load command of {size} bytes at offset {at}")
        if cmd == 0x19:  # LC_SEGMENT_64
            vaddr, _, fileoff, filesize, _, prot = _unpack(
                order + "QQQQii", head, at + 24, "Mach-O segment"
            )
            segments.append(Segment(vaddr, fileoff, filesize, bool(prot & 2), bool(prot & 4)))
        elif cmd == 0x1:  # LC_SEGMENT
            vaddr, _, fileoff, filesize, _, prot = _unpack(
                order + "IIIIii", head, at + 24, "Mach-O segment"
            )
            segments.append(Segment(vaddr, fileoff, filesize, bool(prot & 2), bool(prot & 4)))
        at += size
    return segments
