"""Fetching OVAL documents as claircore's `ovalutil.Fetcher` does, plus decompression.

The fingerprint is the JSON `{"Etag":..,"Date":..}` of the response's ETag and Last-Modified,
sent back as If-None-Match and If-Modified-Since; a 304, or a 200 carrying the same ETag, is
Unchanged. The body is decompressed while it downloads (`compression: auto|none|gzip|bzip2|zstd`;
auto sniffs the magic bytes), so the temporary file holds plain XML for the two-pass reader.
"""

from __future__ import annotations

import bz2
import json
import os
import re
import tempfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import aiohttp
import zstandard

from clair_matcher.updaters._conditional import CHUNK
from clair_matcher.updaters._config import text
from clair_matcher.updaters.base import (
    ConfigProblem,
    FeedError,
    FetchResult,
    Unchanged,
    UnchangedType,
)

COMPRESSIONS = ("auto", "none", "gzip", "bzip2", "zstd")
_ALIASES = {"": "none", "gz": "gzip", "bz2": "bzip2", "zst": "zstd"}
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\x28\xb5\x2f\xfd", "zstd"))
_MAGIC_LEN = 4
USER_AGENT = "claircore/pkg/ovalutil.Fetcher"
# Go's encoding/json escapes these inside strings; the fingerprint text matches Clair's.
_GO_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def parse_compression(value: str, where: str) -> str:
    """A configured compression name (ovalutil's aliases accepted); ConfigProblem if unknown."""
    return _compression_name(value, f"updaters.config.{where}.compression")


def compression_setting(value: Any, where: str) -> str:
    """The `compression` key's reader: empty (not set) or a known compression name."""
    written = text(value, where)
    return _compression_name(written, where) if written else ""


def _compression_name(value: str, where: str) -> str:
    name = _ALIASES.get(value.strip().lower(), value.strip().lower())
    if name not in COMPRESSIONS:
        raise ConfigProblem(f"{where}: {value!r} is not one of {', '.join(COMPRESSIONS)}")
    return name


def sniff_compression(head: bytes) -> str:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


# -- fingerprint -------------------------------------------------------------------------------
def encode_fingerprint(etag: str, date: str) -> str:
    doc = {k: v for k, v in (("Etag", etag), ("Date", date)) if v}
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return re.sub(r"[<>&]", lambda m: _GO_JSON_ESCAPES[m[0]], text)


def decode_fingerprint(text: str) -> tuple[str, str]:
    """(etag, date) of a previous fingerprint; anything unparsable counts as none (as Clair)."""
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        return "", ""
    if not isinstance(doc, dict):
        return "", ""
    etag, date = doc.get("Etag", ""), doc.get("Date", "")
    return (etag if isinstance(etag, str) else ""), (date if isinstance(date, str) else "")


# -- decompression -----------------------------------------------------------------------------
class _Decoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...
    def finished(self) -> bool: ...


class _Plain:
    def feed(self, data: bytes) -> bytes:
        return data

    def finished(self) -> bool:
        return True


class _MultiStream:
    """Concatenated compressed streams (multi-member gzip, pbzip2, zstd frames)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._d: Any = self._new()
        self._fresh = True

    def _new(self) -> Any:
        if self.kind == "gzip":
            return zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        if self.kind == "bzip2":
            return bz2.BZ2Decompressor()
        return zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            self._fresh = False
            out.append(self._d.decompress(data))
            if not self._d.eof:
                break
            data = self._d.unused_data
            if data:
                self._d, self._fresh = self._new(), True
        return b"".join(out)

    def finished(self) -> bool:
        return bool(self._d.eof) or self._fresh


def _decoder(kind: str) -> _Decoder:
    return _Plain() if kind == "none" else _MultiStream(kind)


class _DecodingWriter:
    """Decompresses into `out`; with `auto`, the first bytes choose the decoder."""

    def __init__(self, out: BinaryIO, compression: str, where: str) -> None:
        self.out = out
        self.kind = compression
        self.where = where
        self.received = 0
        self._decoder: _Decoder | None = None if compression == "auto" else _decoder(compression)
        self._head = b""  # bytes held back until the magic can be read

    def write(self, chunk: bytes) -> None:
        if self._decoder is None:
            self._head += chunk
            if len(self._head) < _MAGIC_LEN:
                return
            chunk, self._head = self._head, b""
            self.kind = sniff_compression(chunk)
            self._decoder = _decoder(self.kind)
        try:
            self.out.write(self._decoder.feed(chunk))
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            raise FeedError(
                f"{self.where}: {self.kind} data corrupt within compressed bytes"
                f" {self.received}..{self.received + len(chunk)}: {exc}"
            ) from None
        self.received += len(chunk)

    def close(self) -> None:
        if self._decoder is None:  # shorter than any magic: plain
            self._decoder, self.kind = _Plain(), "none"
            self.write(self._head)
        if not self._decoder.finished():
            raise FeedError(
                f"{self.where}: {self.kind} stream truncated after {self.received} bytes"
            )


async def fetch_oval(
    client: aiohttp.ClientSession,
    url: str,
    prev_fingerprint: str,
    *,
    feed: str,
    compression: str,
) -> FetchResult | UnchangedType:
    """GET an OVAL document into a temporary plain-XML file unless it is unchanged."""
    etag, date = decode_fingerprint(prev_fingerprint)
    headers = {"User-Agent": USER_AGENT}
    if etag:
        headers["If-None-Match"] = etag
    if date:
        headers["If-Modified-Since"] = date
    where = f"{feed}: GET {url}"
    fd, name = tempfile.mkstemp(prefix="clair-oval-", suffix=".xml")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            async with client.get(url, headers=headers) as resp:
                if resp.status == 304:
                    path.unlink()  # noqa: ASYNC240 - a quick local cleanup
                    return Unchanged
                if resp.status != 200:
                    raise FeedError(f"{where}: unexpected status {resp.status}")
                new_etag = resp.headers.get("ETag", "")
                if etag and new_etag == etag:
                    path.unlink()  # noqa: ASYNC240 - a quick local cleanup
                    return Unchanged
                fingerprint = encode_fingerprint(
                    new_etag or etag, resp.headers.get("Last-Modified", "")
                )
                sink = _DecodingWriter(out, compression, where)
                async for chunk in resp.content.iter_chunked(CHUNK):
                    sink.write(chunk)
                sink.close()
    except aiohttp.ClientError as exc:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 - a quick local cleanup
        raise FeedError(f"{where}: {exc or type(exc).__name__}") from exc
    except BaseException:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 - a quick local cleanup
        raise
    return FetchResult(path=path, fingerprint=fingerprint, url=url)
