"""Update files opened for reading (FILE, URL, stdin) and writing, compressed or not."""

from __future__ import annotations

import io
import sys
import urllib.error
import urllib.request
from typing import IO, Any, Literal

from clair_matcher.airgap._errors import AirgapError
from clair_matcher.airgap._progress import Progress

Compression = Literal["none", "gzip", "zstd"]
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
READ_BUFFER = 1 << 20


class _CountingReader(io.RawIOBase):
    """Counts the bytes read from the (possibly compressed) source, for the progress line."""

    def __init__(self, source: IO[bytes], progress: Progress) -> None:
        self.source = source
        self.progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.progress.bytes_read += n
        return n


def open_source(
    source: str, compression: Compression | None, progress: Progress
) -> tuple[IO[bytes], list[IO[bytes]]]:
    """A buffered, decompressed byte stream of FILE, URL or "-", and what to close after.

    Compression: the flag, else the name's suffix, else sniffed from the magic bytes.
    """
    if source == "-":
        raw: IO[bytes] = sys.stdin.buffer
    elif source.startswith(("http://", "https://")):
        try:
            raw = urllib.request.urlopen(source, timeout=300)
        except urllib.error.HTTPError as exc:
            raise AirgapError(f"{source}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise AirgapError(f"{source}: {reason}") from None
    else:
        try:
            raw = open(source, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise AirgapError(f"{source}: {exc.strerror or exc}") from None
    counted = io.BufferedReader(_CountingReader(raw, progress), READ_BUFFER)
    if compression is None:
        name = source.split("?", 1)[0]
        if name.endswith(".gz"):
            compression = "gzip"
        elif name.endswith(".zst"):
            compression = "zstd"
        else:
            magic = counted.peek(4)[:4]
            compression = (
                "gzip"
                if magic.startswith(_GZIP_MAGIC)
                else "zstd"
                if magic == _ZSTD_MAGIC
                else "none"
            )
    closers: list[IO[bytes]] = [raw] if raw is not sys.stdin.buffer else []
    if compression == "gzip":
        from isal import igzip

        stream: IO[bytes] = io.BufferedReader(igzip.open(counted, "rb"), READ_BUFFER)  # type: ignore[no-untyped-call]
    elif compression == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(counted, read_across_frames=True)
        stream = io.BufferedReader(reader, READ_BUFFER)
    else:
        stream = counted
    return stream, [stream, *closers]


def open_output(path: str | None, compression: Compression | None) -> tuple[IO[bytes], Any]:
    """A writer for PATH (stdout if none), compressed as asked or as its suffix says, and the
    raw file to close after it (None: nothing more to close)."""
    if compression is None and path:
        compression = "gzip" if path.endswith(".gz") else "zstd" if path.endswith(".zst") else None
    raw: IO[bytes] = open(path, "wb") if path else sys.stdout.buffer  # noqa: SIM115
    if compression == "gzip":
        from isal import igzip

        return igzip.open(raw, "wb", compresslevel=1), raw  # type: ignore[no-untyped-call]
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False), raw
    return raw, None
