"""The rpm header blob, as every rpm database backend stores it, and the fields Clair reads.

Layout (rpm `lib/header.c`, `hdrblob*`): big-endian `il` (index entry count) and `dl` (data
length), then `il` 16-byte entries `(tag, type, offset, count)`, then `dl` bytes of data. The
database copy has no leading magic. Entry 0 is usually a region tag (HEADER_IMMUTABLE 63, or
HEADER_IMAGE 61 / HEADER_SIGNATURES 62) of type BIN, count 16, whose offset points at a 16-byte
trailer in the data; old Berkeley DB headers may lack it, so a missing region is tolerated (as
claircore does). Entries after the region ("dribble") override earlier ones: the last wins.

Every offset and count is checked against the blob before use, sizes are capped, and every
failure is an `RpmDBError`.
"""

from __future__ import annotations

import struct
import urllib.parse
from dataclasses import dataclass
from typing import NamedTuple

# Caps for hostile input: rpm itself allows 0xffff tags and 256 MiB of data.
MAX_INDEX_ENTRIES = 0xFFFF
MAX_DATA_LENGTH = 64 * 1024 * 1024

_ENTRY_SIZE = 16
_PREAMBLE = struct.Struct(">II")

# Types (rpmTagType).
TYPE_NULL, TYPE_CHAR, TYPE_INT8, TYPE_INT16, TYPE_INT32, TYPE_INT64 = range(6)
TYPE_STRING, TYPE_BIN, TYPE_STRING_ARRAY, TYPE_I18NSTRING = 6, 7, 8, 9
_STRING_TYPES = frozenset({TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING})
_ALIGNMENT = {TYPE_INT16: 2, TYPE_INT32: 4, TYPE_INT64: 8}

# Region tags and the first ordinary tag number (rpmtag.h).
TAG_HEADER_IMAGE = 61
TAG_HEADER_SIGNATURES = 62
TAG_HEADER_IMMUTABLE = 63
TAG_HEADER_I18NTABLE = 100
_REGION_TAGS = frozenset({TAG_HEADER_IMAGE, TAG_HEADER_SIGNATURES, TAG_HEADER_IMMUTABLE})

# The tags Clair reads (claircore internal/rpm/info.go), minus the file lists.
TAG_SIGPGP = 259
TAG_NAME = 1000
TAG_VERSION = 1001
TAG_RELEASE = 1002
TAG_EPOCH = 1003
TAG_ARCH = 1022
TAG_SOURCERPM = 1044
TAG_PAYLOADDIGEST = 5092
TAG_PAYLOADDIGESTALGO = 5093
TAG_MODULARITYLABEL = 5096
_WANTED = frozenset(
    {
        TAG_SIGPGP,
        TAG_NAME,
        TAG_VERSION,
        TAG_RELEASE,
        TAG_EPOCH,
        TAG_ARCH,
        TAG_SOURCERPM,
        TAG_PAYLOADDIGEST,
        TAG_PAYLOADDIGESTALGO,
        TAG_MODULARITYLABEL,
    }
)
_PGPHASHALGO_SHA256 = 8


class RpmDBError(ValueError):
    """A package database or header blob that cannot be read: corrupt, truncated or hostile."""


class IndexEntry(NamedTuple):
    tag: int
    type: int
    offset: int
    item_count: int


@dataclass(frozen=True, slots=True)
class RpmPackage:
    """What Clair takes from one installed header."""

    name: str
    epoch: int | None
    version: str
    release: str
    arch: str
    source_rpm: str
    modularity_label: str
    payload_digest: str = ""
    payload_digest_algo: int = 0
    signing_key_id: str = ""  # 16 hex digits of the SIGPGP issuer, "" if unsigned/unknown

    @property
    def evr(self) -> str:
        """Clair's version string: `epoch:version-release`, the epoch only when non-zero."""
        prefix = f"{self.epoch}:" if self.epoch else ""
        return f"{prefix}{self.version}-{self.release}"

    @property
    def module_stream(self) -> str:
        """`name:stream` of a modularity label `name:stream:version:context`, else ""."""
        parts = self.modularity_label.split(":")
        return f"{parts[0]}:{parts[1]}" if len(parts) > 2 else ""

    @property
    def repository_hint(self) -> str:
        """Clair's RepositoryHint: url-encoded `hash=sha256:<digest>` and `key=<key id>`."""
        values: list[tuple[str, str]] = []
        if self.payload_digest and self.payload_digest_algo == _PGPHASHALGO_SHA256:
            values.append(("hash", "sha256:" + self.payload_digest))
        if self.signing_key_id:
            values.append(("key", self.signing_key_id))
        return urllib.parse.urlencode(values)


class Header:
    """A validated header blob; values are read (and bounds-checked) on demand."""

    __slots__ = ("_data", "entries", "region_tag")

    def __init__(self, blob: bytes) -> None:
        if len(blob) < _PREAMBLE.size:
            raise RpmDBError(f"header blob of {len(blob)} bytes is shorter than its preamble")
        il, dl = _PREAMBLE.unpack_from(blob)
        if not 0 < il <= MAX_INDEX_ENTRIES:
            raise RpmDBError(f"header index count {il} out of range")
        if dl > MAX_DATA_LENGTH:
            raise RpmDBError(f"header data length {dl} out of range")
        data_start = _PREAMBLE.size + il * _ENTRY_SIZE
        if data_start + dl != len(blob):
            raise RpmDBError(
                f"header size mismatch: {il} entries and {dl} data bytes need "
                f"{data_start + dl} bytes, blob has {len(blob)}"
            )
        self._data = blob[data_start:]
        index = blob[_PREAMBLE.size : data_start]
        # Plain (tag, type, offset, count) tuples: unpacked in C, cheap for ~100 per header.
        self.entries: list[tuple[int, int, int, int]] = list(struct.iter_unpack(">iiii", index))
        self.region_tag = self._verify_region()
        self._verify_entries()

    def _verify_region(self) -> int:
        """The region tag, or 0 for a region-less (legacy Berkeley DB) header."""
        first = IndexEntry(*self.entries[0])
        if first.tag not in _REGION_TAGS:
            return 0
        dl = len(self._data)
        if first.type != TYPE_BIN or first.item_count != _ENTRY_SIZE:
            raise RpmDBError(
                f"region tag {first.tag} has type {first.type} count {first.item_count}"
            )
        if first.offset < 0 or first.offset + _ENTRY_SIZE > dl:
            raise RpmDBError(f"region trailer offset {first.offset} outside data of {dl} bytes")
        tag, typ, neg_offset, count = struct.unpack_from(">iiii", self._data, first.offset)
        if first.tag == TAG_HEADER_SIGNATURES and tag == TAG_HEADER_IMAGE:
            tag = TAG_HEADER_SIGNATURES  # old signature headers used the image tag (rpm does this)
        if tag != first.tag or typ != TYPE_BIN or count != _ENTRY_SIZE:
            raise RpmDBError(f"bad region trailer: tag {tag} type {typ} count {count}")
        index_len = -neg_offset
        if index_len % _ENTRY_SIZE or not 0 < index_len // _ENTRY_SIZE <= len(self.entries):
            raise RpmDBError(f"region trailer covers {index_len} index bytes")
        return first.tag

    def _verify_entries(self) -> None:
        dl = len(self._data)
        region = self.region_tag
        for tag, typ, offset, count in self.entries[1 if region else 0 :]:
            if region and tag < TAG_HEADER_I18NTABLE:
                raise RpmDBError(f"entry tag {tag} below {TAG_HEADER_I18NTABLE}")
            if not TYPE_NULL <= typ <= TYPE_I18NSTRING:
                raise RpmDBError(f"entry tag {tag} has unknown type {typ}")
            if count <= 0 or count > dl:
                raise RpmDBError(f"entry tag {tag} has count {count}")
            if not 0 <= offset <= dl:
                raise RpmDBError(f"entry tag {tag} offset {offset} outside data")
            if offset % _ALIGNMENT.get(typ, 1):
                raise RpmDBError(f"entry tag {tag} offset {offset} misaligned")

    def wanted(self) -> dict[int, IndexEntry]:
        """Entries of the tags Clair reads, last one winning."""
        return {entry[0]: IndexEntry(*entry) for entry in self.entries if entry[0] in _WANTED}

    def first_string(self, entry: IndexEntry) -> str:
        """A STRING value, or the first element of a STRING_ARRAY / I18NSTRING."""
        if entry.type not in _STRING_TYPES:
            raise RpmDBError(f"tag {entry.tag} has type {entry.type}, want a string")
        end = self._data.find(b"\0", entry.offset)
        if end < 0:
            raise RpmDBError(f"tag {entry.tag}: string runs past the header data")
        return self._data[entry.offset : end].decode("utf-8", "replace")

    def first_int32(self, entry: IndexEntry) -> int:
        """The first INT32 value (only the first is read: a forged count costs nothing)."""
        if entry.type != TYPE_INT32:
            raise RpmDBError(f"tag {entry.tag} has type {entry.type}, want INT32")
        if entry.offset + 4 > len(self._data):
            raise RpmDBError(f"tag {entry.tag}: INT32 value runs past the data")
        value: int = struct.unpack_from(">i", self._data, entry.offset)[0]
        return value

    def binary(self, entry: IndexEntry) -> bytes:
        if entry.type != TYPE_BIN:
            raise RpmDBError(f"tag {entry.tag} has type {entry.type}, want BIN")
        end = entry.offset + entry.item_count
        if end > len(self._data):
            raise RpmDBError(f"tag {entry.tag}: {entry.item_count} bytes run past the data")
        return self._data[entry.offset : end]


def parse_header(blob: bytes) -> Header:
    return Header(blob)


def package_from_header(blob: bytes) -> RpmPackage:
    """Read NAME, EPOCH, VERSION, RELEASE, ARCH, SOURCERPM, MODULARITYLABEL and the hint tags."""
    header = Header(blob)
    entries = header.wanted()

    def text(tag: int) -> str:
        entry = entries.get(tag)
        return header.first_string(entry) if entry is not None else ""

    def int32(tag: int) -> int | None:
        entry = entries.get(tag)
        return header.first_int32(entry) if entry is not None else None

    name = text(TAG_NAME)
    if not name:
        raise RpmDBError("header has no NAME")
    sig = entries.get(TAG_SIGPGP)
    return RpmPackage(
        name=name,
        epoch=int32(TAG_EPOCH),
        version=text(TAG_VERSION),
        release=text(TAG_RELEASE),
        arch=text(TAG_ARCH),
        source_rpm=text(TAG_SOURCERPM),
        modularity_label=text(TAG_MODULARITYLABEL),
        payload_digest=text(TAG_PAYLOADDIGEST),
        payload_digest_algo=int32(TAG_PAYLOADDIGESTALGO) or 0,
        signing_key_id=pgp_issuer_key_id(header.binary(sig)) if sig is not None else "",
    )


def pgp_issuer_key_id(packets: bytes) -> str:
    """The issuer key id (16 hex digits) of the first binary-document signature packet.

    OpenPGP (RFC 4880): v3 signatures carry the key id at a fixed place, v4 ones in an issuer
    subpacket (type 16), hashed or not. Anything unparsable gives "", never an error: the id
    only feeds the repository hint.
    """
    pos = 0
    while pos < len(packets):
        parsed = _next_packet(packets, pos)
        if parsed is None:
            return ""
        tag, body, pos = parsed
        if tag != 2 or not body:  # 2: signature packet
            continue
        key = _signature_issuer(body)
        if key:
            return key
    return ""


def _next_packet(buf: bytes, pos: int) -> tuple[int, bytes, int] | None:
    first = buf[pos]
    if not first & 0x80:
        return None
    pos += 1
    if first & 0x40:  # new format
        tag = first & 0x3F
        if pos >= len(buf):
            return None
        b0 = buf[pos]
        if b0 < 192:
            length, pos = b0, pos + 1
        elif b0 < 224 and pos + 1 < len(buf):
            length, pos = ((b0 - 192) << 8) + buf[pos + 1] + 192, pos + 2
        elif b0 == 255 and pos + 5 <= len(buf):
            length, pos = int.from_bytes(buf[pos + 1 : pos + 5], "big"), pos + 5
        else:
            return None  # partial body lengths never occur in rpm signatures
    else:
        tag = (first >> 2) & 0x0F
        width = (1, 2, 4, 0)[first & 3]
        if width == 0:
            length = len(buf) - pos
        else:
            if pos + width > len(buf):
                return None
            length, pos = int.from_bytes(buf[pos : pos + width], "big"), pos + width
    if pos + length > len(buf):
        return None
    return tag, buf[pos : pos + length], pos + length


def _signature_issuer(body: bytes) -> str:
    version = body[0]
    if version in (2, 3):
        # version, hashed length (5), sig type, time (4), key id (8)
        if len(body) < 15 or body[2] != 0:
            return ""
        return body[7:15].hex()
    if version != 4 or len(body) < 6 or body[1] != 0:
        return ""
    pos = 4
    for _ in range(2):  # hashed, then unhashed subpackets
        if pos + 2 > len(body):
            return ""
        size = int.from_bytes(body[pos : pos + 2], "big")
        area, pos = body[pos + 2 : pos + 2 + size], pos + 2 + size
        key = _issuer_subpacket(area)
        if key:
            return key
    return ""


def _issuer_subpacket(area: bytes) -> str:
    pos = 0
    while pos < len(area):
        b0 = area[pos]
        if b0 < 192:
            length, pos = b0, pos + 1
        elif b0 < 255 and pos + 1 < len(area):
            length, pos = ((b0 - 192) << 8) + area[pos + 1] + 192, pos + 2
        elif b0 == 255 and pos + 5 <= len(area):
            length, pos = int.from_bytes(area[pos + 1 : pos + 5], "big"), pos + 5
        else:
            return ""
        if length == 0 or pos + length > len(area):
            return ""
        if area[pos] & 0x7F == 16 and length == 9:
            return area[pos + 1 : pos + 9].hex()
        pos += length
    return ""
