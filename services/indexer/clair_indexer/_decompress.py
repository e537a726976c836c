"""Streaming decompression of layer blobs: sniff the format, then hand out bounded chunks.

gzip goes through isal's C `_GzipReader` (multi-member aware, drops the GIL); zstd through
`zstandard`'s stream reader across frames.  zstandard reports neither truncation nor the end of
a frame, so `_ZstdFrameTracker` walks frame and block headers of the compressed bytes as they
are read and tells whether the input stopped on a frame boundary.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from gzip import BadGzipFile
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol, cast

import zstandard
from isal import isal_zlib

from clair_indexer._layer_errors import LayerFormatError, LayerLimitError

if TYPE_CHECKING:
    from typing_extensions import Buffer

Compression = Literal["gzip", "zstd", "none"]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_UNSUPPORTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"PK\x03\x04", "zip"),
)
# isal's stubs declare `error` as an instance; at runtime it is the exception class.
_ISAL_ERROR = cast("type[Exception]", isal_zlib.error)
SNIFF_SIZE = 6
_READ_SIZE = 1 << 20


def sniff_compression(head: bytes) -> Compression:
    """Name the compression of a blob from its first bytes; "none" means "try it as plain tar"."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    for magic, name in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            raise LayerFormatError(f"unsupported layer compression: {name}")
    return "none"


def _read_head(raw: BinaryIO) -> bytes:
    # Streams (sockets, HTTP bodies) may return short reads; sniffing wants the full magic.
    head = b""
    while len(head) < SNIFF_SIZE:
        more = raw.read(SNIFF_SIZE - len(head))
        if not more:
            break
        head += more
    return head


class _ChunkReader(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _CompressedSource:
    """Serves the sniffed head again, then the raw blob; counts bytes and feeds the tracker."""

    def __init__(self, raw: BinaryIO, head: bytes, tracker: _ZstdFrameTracker | None) -> None:
        self._raw = raw
        self._head = head
        self._tracker = tracker
        self._raw_readinto: Callable[[memoryview], int | None] | None = getattr(
            raw, "readinto", None
        )
        self.consumed = 0

    def _note(self, data: bytes | memoryview) -> None:
        self.consumed += len(data)
        if self._tracker is not None:
            self._tracker.feed(data)

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            count = len(self._head) if size < 0 else size
            data, self._head = self._head[:count], self._head[count:]
        else:
            data = self._raw.read(size if size >= 0 else _READ_SIZE)
        self._note(data)
        return data

    def readinto(self, buffer: memoryview | bytearray, /) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            count = min(len(view), len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
        elif self._raw_readinto is not None:
            count = self._raw_readinto(view) or 0
        else:
            data = self._raw.read(len(view))
            count = len(data)
            view[:count] = data
        self._note(view[:count])
        return count


class _ZstdFrameTracker:
    """Walks zstd frame structure (RFC 8878) without decompressing; see module docstring."""

    _MAGIC, _SKIPPABLE_SIZE, _FRAME_HEADER, _BLOCK = range(4)

    def __init__(self) -> None:
        self._state = self._MAGIC
        self._want = 4
        self._pending = bytearray()
        self._skip = 0
        self._checksum = False

    @property
    def on_frame_boundary(self) -> bool:
        return self._state == self._MAGIC and not self._pending and not self._skip

    def feed(self, data: bytes | memoryview) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._want - len(self._pending), end - pos)
            self._pending += data[pos : pos + take]
            pos += take
            if len(self._pending) == self._want:
                field = int.from_bytes(self._pending, "little")
                self._pending.clear()
                self._advance(field)

    def _advance(self, field: int) -> None:
        if self._state == self._MAGIC:
            if field == 0xFD2FB528:
                self._state, self._want = self._FRAME_HEADER, 1
            elif field & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._want = self._SKIPPABLE_SIZE, 4
            else:
                raise LayerFormatError(f"zstd stream has an unknown frame magic {field:#010x}")
        elif self._state == self._SKIPPABLE_SIZE:
            self._skip = field
            self._state, self._want = self._MAGIC, 4
        elif self._state == self._FRAME_HEADER:
            single_segment = bool(field & 0x20)
            self._checksum = bool(field & 0x04)
            window = 0 if single_segment else 1
            dict_id = (0, 1, 2, 4)[field & 0x03]
            content_size = (1 if single_segment else 0, 2, 4, 8)[field >> 6]
            self._skip = window + dict_id + content_size
            self._state, self._want = self._BLOCK, 3
        else:
            block_type = (field >> 1) & 0x03
            if block_type == 3:
                raise LayerFormatError("zstd stream has a reserved block type")
            self._skip = 1 if block_type == 1 else field >> 3
            if field & 1:  # last block of the frame
                self._skip += 4 if self._checksum else 0
                self._state, self._want = self._MAGIC, 4


class DecompressedReader(io.RawIOBase):
    """A read-only stream of the uncompressed tar bytes of a layer blob.

    `read(size)` returns at most `size` bytes (b"" at the end), raises `LayerFormatError` for
    truncated or corrupt input and `LayerLimitError` once more than `max_uncompressed` bytes
    came out, or once more than `ratio_floor` bytes came out at over `max_ratio` times the
    compressed bytes read: a decompression bomb stops early, long before the absolute cap.
    """

    def __init__(
        self,
        src: BinaryIO | str | os.PathLike[str],
        max_uncompressed: int = 1 << 62,
        *,
        max_ratio: int = 0,
        ratio_floor: int = 0,
    ) -> None:
        super().__init__()
        self._owns_raw = False
        if isinstance(src, str | os.PathLike):
            self._raw: BinaryIO = open(src, "rb", buffering=0)  # noqa: SIM115 - closed in close()
            self._owns_raw = True
        else:
            self._raw = src
        self.max_uncompressed = max_uncompressed
        self.max_ratio = max_ratio  # 0: no ratio check
        self.ratio_floor = ratio_floor
        self.produced = 0
        try:
            head = _read_head(self._raw)
            self.compression = sniff_compression(head)
        except BaseException:
            self.close()
            raise
        self._tracker = _ZstdFrameTracker() if self.compression == "zstd" else None
        self._source = _CompressedSource(self._raw, head, self._tracker)
        # Both decompressors only call read()/readinto(), which _CompressedSource provides.
        source = cast(BinaryIO, self._source)
        self._reader: _ChunkReader
        if self.compression == "gzip":
            self._reader = isal_zlib._GzipReader(source, _READ_SIZE)
        elif self.compression == "zstd":
            self._reader = zstandard.ZstdDecompressor().stream_reader(
                source, read_size=_READ_SIZE, read_across_frames=True
            )
        else:
            self._reader = self._source

    @property
    def compressed_consumed(self) -> int:
        return self._source.consumed

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(_READ_SIZE), b""))
        try:
            data = self._reader.read(size)
        # isal raises gzip's BadGzipFile (an OSError) for bad magic, flags or CRC trailers.
        except (EOFError, BadGzipFile, _ISAL_ERROR, zstandard.ZstdError) as exc:
            raise self._decode_error(exc) from exc
        if not data and self._tracker is not None and not self._tracker.on_frame_boundary:
            raise LayerFormatError(
                f"zstd stream truncated after {self.compressed_consumed} compressed bytes"
            )
        self.produced += len(data)
        if self.produced > self.max_uncompressed:
            raise LayerLimitError(
                f"decompressed size exceeds limit of {self.max_uncompressed} bytes"
            )
        if (
            self.max_ratio
            and self.produced > self.ratio_floor
            and self.produced > self.max_ratio * self.compressed_consumed
        ):
            raise LayerLimitError(
                f"decompression bomb: {self.produced} bytes from {self.compressed_consumed}"
                f" compressed bytes, over the ratio limit of {self.max_ratio}"
            )
        return data

    def readinto(self, buffer: Buffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def _decode_error(self, exc: Exception) -> LayerFormatError:
        where = f"after {self.compressed_consumed} compressed bytes"
        if isinstance(exc, LayerFormatError):
            return exc
        if isinstance(exc, EOFError):
            return LayerFormatError(f"{self.compression} stream truncated {where}: {exc}")
        return LayerFormatError(f"corrupt {self.compression} stream {where}: {exc}")

    def close(self) -> None:
        if self._owns_raw:
            self._raw.close()
        super().close()


def open_decompressed(
    src: BinaryIO | str | os.PathLike[str],
    max_uncompressed: int = 1 << 62,
    *,
    max_ratio: int = 0,
    ratio_floor: int = 0,
) -> DecompressedReader:
    """Open a layer blob (path or binary file object) as a stream of its uncompressed tar bytes."""
    return DecompressedReader(src, max_uncompressed, max_ratio=max_ratio, ratio_floor=ratio_floor)
