"""The Red Hat VEX updater's spool: the documents one run fetched, in one compressed file.

Fetching collects documents from three places (changed documents, deletion notices, the
archive); parsing then reads them back one at a time, so memory holds one document at most.
Each entry is a header line `<length> <source>\\n` followed by the document's bytes, where
`source` says where the document came from (for error messages). The file is a zstd stream.

The archive is a tar, compressed with zstd (what Red Hat publishes), gzip or bzip2, told apart
by their magic numbers. A compressed stream that ends before its end marker is an error: a
truncated download must not pass for a complete archive.
"""

from __future__ import annotations

import bz2
import gzip
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

import orjson
import zstandard

_READ = 1 << 16
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_CVE_PATH = re.compile(r"^\d{4}/(cve-\d{4}-\d{4,})\.json$")


class SpoolError(ValueError):
    """Bad archive or spool contents; the message says where."""


class SpoolWriter:
    def __init__(self, path: Path) -> None:
        self._raw = path.open("wb")
        self._out = zstandard.ZstdCompressor(level=3).stream_writer(self._raw, closefd=False)
        self.entries = 0

    def add(self, source: str, document: bytes) -> None:
        self._out.write(b"%d %s\n" % (len(document), source.encode("utf-8", "replace")))
        self._out.write(document)
        self.entries += 1

    def close(self) -> None:
        self._out.close()  # type: ignore[no-untyped-call]
        self._raw.close()


def read_spool(path: Path) -> Iterator[tuple[str, bytes]]:
    """(source, document bytes) of each spooled entry, in order."""
    with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
        buffered = _Buffered(reader)
        while True:
            header = buffered.readline()
            if not header:
                return
            size_text, _, source = header.rstrip(b"\n").partition(b" ")
            if not size_text.isdigit():
                raise SpoolError(f"spool: bad entry header {header[:80]!r}")
            body = buffered.read_exactly(int(size_text))
            yield source.decode("utf-8", "replace"), body


class _Buffered:
    """Line and exact-length reads over a decompressing stream."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._buf = bytearray()

    def _fill(self) -> bool:
        chunk = self._stream.read(_READ)
        self._buf += chunk
        return bool(chunk)

    def readline(self) -> bytes:
        while b"\n" not in self._buf:
            if not self._fill():
                line = bytes(self._buf)
                self._buf.clear()
                return line
        end = self._buf.index(b"\n") + 1
        line = bytes(self._buf[:end])
        del self._buf[:end]
        return line

    def read_exactly(self, size: int) -> bytes:
        while len(self._buf) < size:
            if not self._fill():
                raise SpoolError("spool: entry cut short")
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out


def deletion_notice(path: str) -> bytes | None:
    """The stand-in document for a deletions.csv entry (`2023/cve-2023-0001.json`), or None
    when the path does not name a CVE document."""
    match = _CVE_PATH.match(path)
    if match is None:
        return None
    tracking = {"id": match[1].upper(), "status": "deleted"}
    return orjson.dumps({"document": {"tracking": tracking}})


# -- the archive ---------------------------------------------------------------------------
class _ZstdReader:
    """A zstd-decompressing reader (frames back to back) that fails on a truncated stream."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._pending = b""
        self._in_frame = False
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            chunk = self._raw.read(_READ)
            if not chunk:
                if self._in_frame:
                    raise SpoolError(
                        f"zstd stream truncated after {self.consumed} compressed bytes"
                    )
                return b""
            self.consumed += len(chunk)
            self._pending = self._decompress(chunk)
        if size < 0 or size >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def _decompress(self, chunk: bytes) -> bytes:
        out = bytearray()
        while chunk:
            try:
                out += self._obj.decompress(chunk)
            except zstandard.ZstdError as exc:
                raise SpoolError(f"zstd: {exc} near compressed byte {self.consumed}") from None
            self._in_frame = not self._obj.eof
            if not self._obj.eof:
                break
            chunk = self._obj.unused_data
            self._obj = self._dctx.decompressobj()
            self._in_frame = bool(chunk)
        return bytes(out)


def _decompressed(raw: IO[bytes]) -> IO[bytes]:
    head = raw.read(4)
    raw.seek(0)
    # read() is all tarfile's stream mode uses of these.
    if head.startswith(_ZSTD_MAGIC):
        return cast(IO[bytes], _ZstdReader(raw))
    if head.startswith(_GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if head.startswith(_BZIP2_MAGIC):
        return cast(IO[bytes], bz2.BZ2File(raw, mode="rb"))
    return raw


def archive_documents(path: Path) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of each regular file of a (compressed) tar, streamed."""
    member = "<start>"
    with path.open("rb") as raw:
        try:
            with tarfile.open(fileobj=_decompressed(raw), mode="r|") as tar:
                for info in tar:
                    member = info.name
                    if not info.isreg():
                        continue
                    fp = tar.extractfile(info)
                    if fp is None:
                        continue
                    yield info.name, fp.read()
        except (tarfile.TarError, EOFError, OSError, zstandard.ZstdError, SpoolError) as exc:
            raise SpoolError(
                f"archive unreadable at or after member {member!r}"
                f" (compressed offset {raw.tell()}): {exc}"
            ) from None
