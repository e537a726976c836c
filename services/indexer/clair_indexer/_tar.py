"""Tar header parsing (ustar, GNU, PAX) for the one-pass layer walker.

Only the fields a scanner needs are decoded: name, link name, size and type.  Formats follow
POSIX.1-2008 `pax` (ustar + extended headers) and GNU tar's long-name ('L'/'K') and sparse ('S')
extensions.
"""

from __future__ import annotations

import posixpath
import struct
import zlib
from dataclasses import dataclass

from clair_indexer._layer_errors import LayerFormatError

BLOCK_SIZE = 512
ZERO_BLOCK = bytes(BLOCK_SIZE)

REGULAR_TYPES = frozenset((b"0", b"\0", b"7"))  # '7' is "contiguous", a regular file in practice
HARDLINK, SYMLINK, DIRECTORY = b"1", b"2", b"5"
GNU_LONGNAME, GNU_LONGLINK, GNU_SPARSE = b"L", b"K", b"S"
PAX_LOCAL, PAX_GLOBAL = b"x", b"g"
META_TYPES = frozenset((GNU_LONGNAME, GNU_LONGLINK, PAX_LOCAL, PAX_GLOBAL))
_LINK_TYPES = frozenset((HARDLINK, SYMLINK))

_POSIX_MAGIC = b"ustar\x00"
_SIGNED_BYTES = struct.Struct("148b8x356b")
_EMPTY_CHECKSUM_FIELD = 8 * ord(" ")


@dataclass(slots=True)
class TarHeader:
    name: str  # raw member name (ustar prefix joined), before PAX/GNU overrides
    linkname: str
    size: int
    typeflag: bytes
    gnu_sparse_extended: bool  # GNU 'S' member followed by extra sparse-map blocks
    mode_field: bytes = b""  # decoded only when asked for: most members never are

    @property
    def mode(self) -> int:
        """Permission bits (a bad field reads as 0: the mode only selects probes)."""
        digits = self.mode_field.strip(b" \0")
        try:
            return int(digits, 8) & 0o7777 if digits else 0
        except ValueError:
            return 0


def decode_name(raw: bytes) -> str:
    """Names are bytes on disk; keep undecodable ones round-trippable like tarfile does."""
    return raw.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def parse_number(field: bytes, what: str, offset: int) -> int:
    """Octal (NUL/space padded) or GNU base-256 numeric field."""
    if field[0] & 0x80:
        if field[0] == 0xFF:
            raise LayerFormatError(f"negative {what} in tar header at offset {offset}")
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    digits = field.strip(b" \0")
    if not digits:
        return 0
    try:
        value = int(digits, 8)
    except ValueError:
        value = -1
    if value < 0:
        raise LayerFormatError(f"invalid {what} field {digits!r} in tar header at offset {offset}")
    return value


def _checksum_matches(block: bytes, stored: int) -> bool:
    # adler32's low half is 1 + byte sum mod 65521; 256 bytes sum to at most 65280, so two
    # halves give the exact sum without a per-byte Python loop.
    view = memoryview(block)
    total = (zlib.adler32(view[:256]) & 0xFFFF) + (zlib.adler32(view[256:]) & 0xFFFF) - 2
    unsigned = total - sum(block[148:156]) + _EMPTY_CHECKSUM_FIELD
    if unsigned == stored:
        return True
    # Some historic tars summed signed chars.
    signed: tuple[int, ...] = _SIGNED_BYTES.unpack(block)
    return sum(signed) + _EMPTY_CHECKSUM_FIELD == stored


def parse_header(block: bytes, offset: int) -> TarHeader:
    """Decode one 512-byte header block that is known not to be all zeros."""
    try:
        stored = parse_number(block[148:156], "checksum", offset)
    except LayerFormatError:
        raise LayerFormatError(
            f"layer is not a tar archive: invalid header checksum field at offset {offset}"
        ) from None
    if not _checksum_matches(block, stored):
        raise LayerFormatError(
            f"layer is not a tar archive: header checksum mismatch at offset {offset}"
        )
    typeflag = block[156:157]
    name = decode_name(block[0:100])
    if block[257:263] == _POSIX_MAGIC and block[345] != 0:
        # ustar splits long names into prefix + "/" + name; GNU uses those bytes for times.
        name = decode_name(block[345:500]) + "/" + name
    return TarHeader(
        name=name,
        linkname=decode_name(block[157:257]) if typeflag in _LINK_TYPES else "",
        size=parse_number(block[124:136], "size", offset),
        typeflag=typeflag,
        gnu_sparse_extended=typeflag == GNU_SPARSE and block[482] != 0,
        mode_field=block[100:108],
    )


def parse_pax_records(data: bytes, offset: int) -> dict[str, str]:
    """Parse `"<len> <key>=<value>\\n"` records of a PAX extended header."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # some writers pad the record area with NULs
            break
        space = data.find(b" ", pos, pos + 20)
        length_text = data[pos:space] if space > pos else b""
        if not length_text.isdigit():
            raise LayerFormatError(f"malformed PAX header at offset {offset}")
        end = pos + int(length_text)
        key, eq, value = data[space + 1 : end].partition(b"=")
        if not eq or end > len(data) or data[end - 1 : end] != b"\n":
            raise LayerFormatError(f"malformed PAX record in header at offset {offset}")
        records[key.decode("utf-8", "surrogateescape")] = value[:-1].decode(
            "utf-8", "surrogateescape"
        )
        pos = end
    return records


def pax_size(records: dict[str, str], offset: int) -> int | None:
    text = records.get("size")
    if not text:
        return None
    if not text.isdigit():
        raise LayerFormatError(f"invalid PAX size {text!r} at offset {offset}")
    return int(text)


def normalize_path(name: str) -> str | None:
    """Layer-relative path without "./" or "/" prefixes; None if it would escape the root."""
    plain = name[:-1] if name.endswith("/") else name
    if plain and plain[0] not in "./" and "//" not in name and "/." not in plain:
        return plain  # no empty, "." or ".." segment: already normal (most names are)
    path = posixpath.normpath(name.lstrip("/"))
    if path == "..":
        return None
    if path.startswith("../"):
        return None
    return "" if path == "." else path


def split_whiteout(path: str) -> tuple[str, str] | None:
    """("opaque", dir) or ("whiteout", deleted path) for OCI/AUFS whiteout entries."""
    directory, _, base = path.rpartition("/")
    if not base.startswith(".wh."):
        return None
    if base == ".wh..wh..opq":
        return ("opaque", directory)
    if base.startswith(".wh..wh."):
        return ("meta", path)  # other AUFS bookkeeping (.wh..wh.plnk etc.): not a deletion
    target = base[len(".wh.") :]
    return ("whiteout", f"{directory}/{target}" if directory else target)
