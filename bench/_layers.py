"""Realistic layers and the honest baseline for reading them.

A layer here is a tar of this machine's own `/usr` (in sorted order, up to a size), with its real
`/var/lib/dpkg/status` and `/etc/os-release`: it compresses like a real image layer (about 3:1,
where random bytes would not compress at all) and the dpkg scanner finds real packages in it.

The baseline is the fastest honest way to do a scan's unavoidable work: decompress with the same
library (isal's C gzip reader, zstandard) in 1 MiB reads and step over the tar headers in a lean
loop that never copies file data. `tarfile` is no baseline: it is about twice as slow.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, cast

import zstandard
from isal import isal_zlib

CHUNK = 1 << 20
STATUS_PATH = "var/lib/dpkg/status"
_EXTRA_FILES = ("/var/lib/dpkg/status", "/etc/os-release")


def build_system_layer(path: Path, size_bytes: int, root: str = "/usr") -> tuple[int, int]:
    """Write a plain tar of about `size_bytes` of file data from `root`, plus the machine's dpkg
    status and os-release; returns (members, bytes of file data).

    An evenly spaced sample of its entries (every n-th in sorted order) goes in, so that a
    smaller layer keeps the real mix of file sizes and kinds (directories, links, files)
    rather than the first few big binaries."""
    entries: list[tuple[str, int]] = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        entries.append((directory, -1))
        for name in sorted(files):
            full = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                info = os.lstat(full)
                entries.append((full, info.st_size if stat.S_ISREG(info.st_mode) else 0))
    total = sum(size for _, size in entries if size > 0)
    stride = max(1, round(total / size_bytes))
    members = data = 0
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for extra in _EXTRA_FILES:
            if os.path.exists(extra):
                _add(archive, extra)
                members += 1
        for picked, (full, size) in enumerate(entries):
            if picked % stride:
                continue
            try:
                _add(archive, full)
            except OSError:  # unreadable or vanished: a real layer would not have it either
                continue
            members += 1
            data += max(size, 0)
    return members, data


def _add(archive: tarfile.TarFile, path: str) -> None:
    """Add one file as image builders write it: whole-second times, so no PAX header unless a
    name or size needs one (tarfile would write one for every fractional mtime)."""
    info = archive.gettarinfo(path, arcname=path.lstrip("/"))
    info.mtime = int(info.mtime)
    if info.isreg():
        with open(path, "rb") as data:
            archive.addfile(info, data)
    else:
        archive.addfile(info)


def compress_all(plain: Path, directory: Path) -> dict[str, Path]:
    """gzip (isal level 3, about what registries serve) and zstd (level 3) beside the plain tar."""
    gz, zst = directory / f"{plain.stem}.tar.gz", directory / f"{plain.stem}.tar.zst"
    with plain.open("rb") as src, gz.open("wb") as dst:
        deflate = isal_zlib.compressobj(3, isal_zlib.DEFLATED, 31)  # wbits 31: gzip wrapper
        while chunk := src.read(CHUNK):
            dst.write(deflate.compress(chunk))
        dst.write(deflate.flush())
    with plain.open("rb") as src, zst.open("wb") as dst:
        zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
    return {"gzip": gz, "zstd": zst, "none": plain}


def open_lean(blob: Path, stack: contextlib.ExitStack) -> Callable[[int], bytes]:
    """`read` of the blob's uncompressed bytes through the bare decompressor (closed by `stack`)."""
    raw: BinaryIO = stack.enter_context(blob.open("rb", buffering=0))
    if raw.seekable():
        head = raw.read(4)
        raw.seek(0)
    else:  # a pipe (index_layer.py's piped case): look ahead through a buffer instead
        buffered = io.BufferedReader(cast(io.RawIOBase, raw), CHUNK)
        head, raw = buffered.peek(4)[:4], cast(BinaryIO, buffered)
    if head.startswith(b"\x1f\x8b"):
        # The C reader the indexer uses too (multi-member aware, releases the GIL).
        gzip_reader: _Reader = isal_zlib._GzipReader(raw, CHUNK)
        return gzip_reader.read
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        stream = zstandard.ZstdDecompressor().stream_reader(
            raw, read_size=CHUNK, read_across_frames=True
        )
        stack.callback(stream.close)
        return stream.read
    return raw.read


class _Reader(Protocol):
    def read(self, size: int, /) -> bytes: ...


def _size(field: bytes) -> int:
    if field[0] & 0x80:  # base-256 (GNU) for sizes past 8 GiB
        return int.from_bytes(field[1:], "big")
    digits = field.strip(b"\0 ")
    return int(digits, 8) if digits else 0


def lean_walk(blob: Path) -> int:
    """Decompress `blob` and step over its tar headers; returns the header blocks seen."""
    members = skip = 0
    rest = b""
    with contextlib.ExitStack() as stack:
        read = open_lean(blob, stack)
        while chunk := read(CHUNK):
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            data = memoryview(rest + chunk[skip:] if rest else chunk)[0 if rest else skip :]
            skip, pos, end = 0, 0, len(data)
            while end - pos >= 512:
                if data[pos] == 0 and data[pos + 124] == 0:  # a zero block: end-of-archive
                    pos += 512
                    continue
                size = _size(bytes(data[pos + 124 : pos + 136]))
                members += 1
                pos += 512 + ((size + 511) & ~511)
            if pos > end:
                skip, rest = pos - end, b""
            else:
                rest = bytes(data[pos:])
    return members


def decompress_only(blob: Path) -> int:
    total = 0
    with contextlib.ExitStack() as stack:
        read = open_lean(blob, stack)
        while chunk := read(CHUNK):
            total += len(chunk)
    return total
