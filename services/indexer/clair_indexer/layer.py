"""One-pass reader of container layer blobs.

`read_layer` streams a (gzip, zstd or plain) tar layer once, never holding more than one
decompressed chunk plus the files a caller asked for, and never touching the disk.  It returns
those files with the layer's symlinks, hard links, directories and whiteouts.

End of archive: two zero blocks end the layer and nothing after them is read (as Go's
archive/tar, which claircore uses).  A stream that ends exactly on a header boundary without
that trailer is accepted too (Go accepts it; some layer writers omit it); ending anywhere
else is a `LayerFormatError`.  Truncated gzip and zstd streams are detected by the
decompression layer, so the tolerance only applies to intact compressed streams.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from clair_indexer import _tar
from clair_indexer._decompress import (
    Compression,
    DecompressedReader,
    open_decompressed,
    sniff_compression,
)
from clair_indexer._layer_errors import LayerFormatError, LayerLimitError

if TYPE_CHECKING:
    from clair_indexer.scanners.base import FileProbe

# path, size, mode -> a probe to feed the file to, or None (see scanners/base.py).
Prober = Callable[[str, int, int], "FileProbe | None"]

log = logging.getLogger("clair.indexer.layer")

__all__ = [
    "DEFAULT_LIMITS",
    "Compression",
    "DecompressedReader",
    "LayerContents",
    "LayerFormatError",
    "LayerLimitError",
    "LayerLimits",
    "Prober",
    "open_decompressed",
    "read_layer",
    "sniff_compression",
]

_CHUNK_SIZE = 1 << 20
# What one listed name costs beyond its characters (str object, set/dict slot): an estimate.
_LISTED_OVERHEAD = 100


@dataclass(frozen=True, slots=True)
class LayerLimits:
    max_member_size: int = 64 << 20  # a wanted file bigger than this is an error
    max_total_wanted: int = 256 << 20  # sum of wanted file bytes kept in memory
    max_members: int = 2_000_000  # tar headers, including PAX/GNU metadata headers
    max_uncompressed: int = 64 << 30  # decompression-bomb guard
    max_header_size: int = 1 << 20  # one PAX extended header or GNU long name
    # Bomb guard: past `ratio_floor` output bytes, more than `max_ratio` output bytes per
    # compressed byte is an error (real layers stay near 2-10; zeros reach 1000+).
    max_ratio: int = 200
    ratio_floor: int = 512 << 20
    # Longer member names or link targets are skipped: no Linux syscall takes them (PATH_MAX),
    # and symlink resolution must not walk megabyte-long targets.
    max_path_length: int = 4096
    # Approximate memory of what the reader lists besides wanted files (links, directories,
    # whiteouts, skipped names); tiny headers compress so well that this needs its own cap.
    max_listed_bytes: int = 128 << 20


DEFAULT_LIMITS = LayerLimits()


@dataclass(slots=True)
class LayerContents:
    """What one layer holds, keyed by normalized path ("var/lib/dpkg/status", no "./" or "/")."""

    compression: Compression
    files: dict[str, bytes] = field(default_factory=dict)  # wanted regular files
    symlinks: dict[str, str] = field(default_factory=dict)  # path -> link target as stored
    # Every hard link: path -> normalized target.  When the target was kept, `files` also
    # holds the content at the link path; otherwise the target is in a lower layer or was
    # not wanted, and the caller resolves it.
    hardlinks: dict[str, str] = field(default_factory=dict)
    whiteouts: set[str] = field(default_factory=set)  # paths this layer deletes
    opaque_dirs: set[str] = field(default_factory=set)  # dirs whose lower contents are hidden
    dirs: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)  # member name -> why it was ignored
    probed: dict[str, bytes] = field(default_factory=dict)  # path -> what its probe distilled
    uncompressed_size: int = 0  # tar bytes read, through the end-of-archive marker
    member_count: int = 0  # tar headers read, metadata headers included


class _TarStream:
    """Block-level cursor over decompressed chunks; skipping never copies."""

    def __init__(self, reader: DecompressedReader) -> None:
        self._reader = reader
        self._buf = b""
        self._pos = 0
        self._buf_offset = 0  # tar offset of self._buf[0]

    @property
    def offset(self) -> int:
        return self._buf_offset + self._pos

    def _next_chunk(self) -> bool:
        self._buf_offset += len(self._buf)
        self._buf = self._reader.read(_CHUNK_SIZE)
        self._pos = 0
        return bool(self._buf)

    def read_header_block(self) -> bytes:
        """The next 512-byte block, or b"" when the stream ends exactly here."""
        end = self._pos + _tar.BLOCK_SIZE
        if end <= len(self._buf):
            self._pos = end
            return self._buf[end - _tar.BLOCK_SIZE : end]
        if self._pos == len(self._buf) and not self._next_chunk():
            return b""
        return self.read_exact(_tar.BLOCK_SIZE, "a tar header")

    def read_exact(self, size: int, what: str) -> bytes:
        end = self._pos + size
        if end <= len(self._buf):
            self._pos = end
            return self._buf[end - size : end]
        start_offset = self.offset
        parts = [self._buf[self._pos :]]
        missing = size - len(parts[0])
        while missing > 0:
            if not self._next_chunk():
                raise self._truncated(what, start_offset)
            parts.append(self._buf[:missing])
            self._pos = len(parts[-1])
            missing -= self._pos
        return b"".join(parts)

    def skip(self, size: int, what: str) -> None:
        end = self._pos + size
        if end <= len(self._buf):
            self._pos = end
            return
        start_offset = self.offset
        missing = end - len(self._buf)
        while True:
            if not self._next_chunk():
                raise self._truncated(what, start_offset)
            if missing <= len(self._buf):
                self._pos = missing
                return
            missing -= len(self._buf)

    def feed(self, size: int, probe: FileProbe, what: str) -> None:
        """Hands the next `size` bytes to `probe` as views of the decompressed chunks,
        skipping the ranges it does not ask for; a probe that fails is dropped."""
        offset = 0
        wanted = 0
        while offset < size:
            if wanted < 0:
                self.skip(size - offset, what)
                return
            if wanted > offset:
                step = min(wanted, size) - offset
                self.skip(step, what)
                offset += step
                continue
            if self._pos == len(self._buf) and not self._next_chunk():
                raise self._truncated(what, self.offset)
            step = min(len(self._buf) - self._pos, size - offset)
            view = memoryview(self._buf)[self._pos : self._pos + step]
            self._pos += step
            try:
                wanted = probe.feed(offset, view)
            except Exception:  # a probe bug must not fail the layer: log it and move on
                log.exception("probe of %s failed; file skipped", what)
                wanted = -1
            offset += step

    def _truncated(self, what: str, start_offset: int) -> LayerFormatError:
        self._pos = len(self._buf)
        return LayerFormatError(
            f"tar stream truncated in {what} starting at offset {start_offset}"
            f" (stream ended at {self.offset})"
        )


def _padded(size: int) -> int:
    return (size + _tar.BLOCK_SIZE - 1) & ~(_tar.BLOCK_SIZE - 1)


class _LayerWalker:
    def __init__(
        self,
        stream: _TarStream,
        contents: LayerContents,
        wanted: Callable[[str], bool],
        prober: Prober | None = None,
    ) -> None:
        self._stream = stream
        self._out = contents
        self._wanted = wanted
        self._prober = prober
        self._wanted_total = 0
        self._listed_bytes = 0
        self._global_pax: dict[str, str] = {}
        self._local_pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None

    def walk(self, limits: LayerLimits) -> None:
        stream, out = self._stream, self._out
        while True:
            offset = stream.offset
            block = stream.read_header_block()
            if not block:
                break  # ended on a header boundary without the trailer: tolerated
            if block == _tar.ZERO_BLOCK:
                following = stream.read_header_block()
                if following and following != _tar.ZERO_BLOCK:
                    raise LayerFormatError(
                        f"layer is not a valid tar archive: lone zero block at offset {offset}"
                    )
                break
            out.member_count += 1
            if out.member_count > limits.max_members:
                raise LayerLimitError(f"layer has more than {limits.max_members} tar members")
            header = _tar.parse_header(block, offset)
            if header.typeflag in _tar.META_TYPES:
                self._read_metadata(header, offset, limits)
            else:
                self._read_member(header, offset, limits)

    def _read_metadata(self, header: _tar.TarHeader, offset: int, limits: LayerLimits) -> None:
        if header.size > limits.max_header_size:
            raise LayerLimitError(
                f"tar metadata header at offset {offset} is {header.size} bytes,"
                f" over the limit of {limits.max_header_size}"
            )
        data = self._stream.read_exact(_padded(header.size), "a tar metadata header")
        data = data[: header.size]
        if header.typeflag == _tar.GNU_LONGNAME:
            self._long_name = _tar.decode_name(data)
        elif header.typeflag == _tar.GNU_LONGLINK:
            self._long_link = _tar.decode_name(data)
        elif header.typeflag == _tar.PAX_LOCAL:
            self._local_pax.update(_tar.parse_pax_records(data, offset))
        else:
            for key, value in _tar.parse_pax_records(data, offset).items():
                if value:
                    self._global_pax[key] = value
                else:  # an empty value deletes a global keyword
                    self._global_pax.pop(key, None)

    def _effective(self, key: str, gnu_value: str | None, header_value: str) -> str:
        return self._local_pax.get(key) or gnu_value or self._global_pax.get(key) or header_value

    def _read_member(self, header: _tar.TarHeader, offset: int, limits: LayerLimits) -> None:
        stream, out = self._stream, self._out
        if header.gnu_sparse_extended:
            while stream.read_exact(_tar.BLOCK_SIZE, "a GNU sparse map")[504]:
                pass
        name, linkname, size = header.name, header.linkname, header.size
        sparse = header.typeflag == _tar.GNU_SPARSE
        if self._local_pax or self._global_pax or self._long_name or self._long_link:
            name = self._effective("path", self._long_name, name)
            linkname = self._effective("linkpath", self._long_link, linkname)
            for pax in (self._global_pax, self._local_pax):  # local overrides global
                pax_size = _tar.pax_size(pax, offset)
                size = size if pax_size is None else pax_size
            sparse = sparse or any(key.startswith("GNU.sparse.") for key in self._local_pax)
            self._local_pax.clear()
            self._long_name = self._long_link = None

        padded = _padded(size)
        too_long = limits.max_path_length
        if len(name) > too_long or len(linkname) > too_long:
            what = "path" if len(name) > too_long else "link target"
            self._skip(f"{name[:256]}...", f"{what} longer than {too_long} bytes", limits)
            stream.skip(padded, "a member with an overlong name")
            return
        path = _tar.normalize_path(name)
        if path is None:
            self._skip(name, "path escapes the layer root", limits)
            stream.skip(padded, name)
            return
        whiteout = _tar.split_whiteout(path) if ".wh." in path else None
        if not path or whiteout is not None:
            if whiteout is not None and whiteout[0] == "whiteout":
                self._list(limits, whiteout[1])
                out.whiteouts.add(whiteout[1])
            elif whiteout is not None and whiteout[0] == "opaque":
                self._list(limits, whiteout[1])
                out.opaque_dirs.add(whiteout[1])
            stream.skip(padded, name)
            return

        # A later entry for the same path replaces an earlier one, as on extraction.
        out.files.pop(path, None)
        out.symlinks.pop(path, None)
        out.hardlinks.pop(path, None)
        typeflag = header.typeflag
        if typeflag == b"\0" and name.endswith("/"):
            typeflag = _tar.DIRECTORY  # pre-POSIX tars marked directories by a trailing slash
        if sparse:
            self._skip(path, "sparse files are not supported", limits)
        elif typeflag in _tar.REGULAR_TYPES:
            if self._wanted(path):
                self._keep(path, size, limits)
                stream.skip(padded - size, path)
                return
            probe = self._prober(path, size, header.mode) if self._prober is not None else None
            if probe is not None:
                self._probe(path, size, probe, limits)
                stream.skip(padded - size, path)
                return
        elif typeflag == _tar.HARDLINK:
            target = _tar.normalize_path(linkname)
            if not target:
                self._skip(path, "hard link target escapes the layer root", limits)
            else:
                self._list(limits, path, target)
                out.hardlinks[path] = target
                kept = out.files.get(target)
                if kept is not None and self._wanted(path):
                    out.files[path] = kept
        elif typeflag == _tar.SYMLINK:
            self._list(limits, path, linkname)
            out.symlinks[path] = linkname
        elif typeflag == _tar.DIRECTORY:
            self._list(limits, path)
            out.dirs.add(path)
        stream.skip(padded, path)

    def _probe(self, path: str, size: int, probe: FileProbe, limits: LayerLimits) -> None:
        self._stream.feed(size, probe, path)
        try:
            distilled = probe.result()
        except Exception:
            log.exception("probe of %s failed; file skipped", path)
            return
        if distilled is not None:
            self._keep_bytes(path, len(distilled), limits)
            self._out.probed[path] = distilled

    def _skip(self, name: str, reason: str, limits: LayerLimits) -> None:
        self._list(limits, name)
        self._out.skipped[name] = reason

    def _list(self, limits: LayerLimits, *names: str) -> None:
        """Accounts for names kept in the listing; raises once they would take too much memory."""
        self._listed_bytes += sum(len(n) for n in names) + _LISTED_OVERHEAD
        if self._listed_bytes > limits.max_listed_bytes:
            raise LayerLimitError(
                "layer lists too many links, directories, whiteouts or skipped members"
                f" (over {limits.max_listed_bytes} bytes of names)"
            )

    def _keep(self, path: str, size: int, limits: LayerLimits) -> None:
        if size > limits.max_member_size:
            raise LayerLimitError(
                f"wanted file {path!r} is {size} bytes, over the limit of {limits.max_member_size}"
            )
        self._keep_bytes(path, size, limits)
        self._out.files[path] = self._stream.read_exact(size, path)

    def _keep_bytes(self, path: str, size: int, limits: LayerLimits) -> None:
        self._wanted_total += size
        if self._wanted_total > limits.max_total_wanted:
            raise LayerLimitError(
                f"wanted files exceed the limit of {limits.max_total_wanted} bytes at {path!r}"
            )


def read_layer(
    src: BinaryIO | str | os.PathLike[str],
    wanted: Callable[[str], bool],
    limits: LayerLimits = DEFAULT_LIMITS,
    prober: Prober | None = None,
) -> LayerContents:
    """Walk a layer blob once and keep the regular files for which `wanted(path)` is true.

    `wanted` gets the normalized path of every regular file, and of every hard link whose
    target this layer kept (the link then shares the target's bytes in `files`). Other
    regular files go to `prober(path, size, mode)`; a probe it returns is fed the file as it
    streams by and what it distils lands in `probed` (counted against `max_total_wanted`).

    `src` is a path or a binary file object (not closed here) holding the layer as
    downloaded: gzip, zstd or plain tar.  Raises `LayerFormatError` for anything that is not
    such a layer and `LayerLimitError` (a subclass) when `limits` are exceeded.
    """
    with open_decompressed(
        src, limits.max_uncompressed, max_ratio=limits.max_ratio, ratio_floor=limits.ratio_floor
    ) as reader:
        contents = LayerContents(compression=reader.compression)
        stream = _TarStream(reader)
        _LayerWalker(stream, contents, wanted, prober).walk(limits)
        contents.uncompressed_size = stream.offset
        return contents
