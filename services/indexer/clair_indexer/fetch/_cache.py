"""The content-addressed disk cache of compressed blobs, bounded in size, evicted LRU.

Blobs live under `<root>/<algo>/<hex>` and appear there only after their digest matched. They
are not fsynced on the indexing path (that cost more than the whole scan); instead a blob found
on disk at start-up is re-hashed on its first use, so one torn by a crash is re-fetched. Callers
pin what they use, so eviction never removes a blob that is being read, nor one whose download
is still being handed out (`in_flight`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from clair_common.models import ModelError, parse_digest
from clair_indexer.fetch._media import Compression, sniff_compression
from clair_indexer.fetch._metrics import CACHE_ENTRIES

T = TypeVar("T")
# Runs blocking work off the event loop (the fetcher's own threads).
Runner = Callable[..., Awaitable[Any]]

log = logging.getLogger("clair_indexer.fetch")

_CHUNK = 1 << 20


@dataclass(slots=True, eq=False)
class Entry:
    digest: str
    path: Path
    size: int
    verified: bool
    compression: Compression
    refs: int = 0


class FetchedLayer:
    """A verified compressed blob in the cache, pinned until `release()` or `with` block exit."""

    __slots__ = ("_cache", "_entry", "_released", "compression", "digest", "path", "size")

    def __init__(self, cache: BlobCache, entry: Entry) -> None:
        self._cache = cache
        self._entry = entry
        self._released = False
        self.digest = entry.digest
        self.path = entry.path
        self.size = entry.size
        self.compression: Compression = entry.compression

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._cache.unpin(self._entry)

    def __enter__(self) -> FetchedLayer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class BlobCache:
    def __init__(
        self, root: Path, *, max_bytes: int, in_flight: Container[str], run: Runner
    ) -> None:
        self.root = root
        self._max_bytes = max_bytes
        self._in_flight = in_flight
        self._run = run
        self._entries: OrderedDict[str, Entry] = OrderedDict()  # least recently used first
        self._total_bytes = 0
        self._load()

    @property
    def total_bytes(self) -> int:
        return self._total_bytes

    def digests(self) -> list[str]:
        return list(self._entries)

    def get(self, digest: str) -> Entry | None:
        return self._entries.get(digest)

    def folder(self, algo: str) -> Path:
        """Where a download writes its temporary file and, once verified, the blob."""
        folder = self.root / algo
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    async def usable(self, entry: Entry) -> bool:
        """Touches a cached blob; False (and forgotten) when it vanished or was torn."""
        try:
            os.utime(entry.path)  # the on-disk LRU order survives restarts
        except FileNotFoundError:
            log.warning("cached layer %s vanished from disk; fetching again", entry.digest)
            self.forget(entry)
            return False
        return entry.verified or await self._reverify(entry)

    async def _reverify(self, entry: Entry) -> bool:
        """Hashes a blob left by an earlier process; drops it when a crash tore it."""
        entry.refs += 1  # nobody may evict it while we read it
        try:
            ok: bool = await self._run(file_matches, entry.path, entry.digest)
        finally:
            entry.refs -= 1
        if ok:
            entry.verified = True
            return True
        log.warning("cached layer %s failed its digest check; fetching again", entry.digest)
        self.forget(entry)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
        return False

    def _load(self) -> None:
        found: list[tuple[float, Entry]] = []
        for algo in ("sha256", "sha512"):
            folder = self.root / algo
            folder.mkdir(parents=True, exist_ok=True)
            for item in os.scandir(folder):
                if item.name.startswith(".tmp-"):  # left by a crash mid-download
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(item.path)
                    continue
                digest = f"{algo}:{item.name}"
                try:
                    parse_digest(digest)
                    stat = item.stat()
                    with open(item.path, "rb") as blob:
                        compression = sniff_compression(blob.read(4))
                except (ModelError, OSError):
                    continue
                found.append(
                    (
                        stat.st_mtime,
                        Entry(digest, Path(item.path), stat.st_size, False, compression),
                    )
                )
        for _, entry in sorted(found, key=lambda pair: pair[0]):
            self.add(entry)
        self.evict()

    def add(self, entry: Entry) -> None:
        self._entries[entry.digest] = entry
        self._total_bytes += entry.size
        CACHE_ENTRIES.inc()

    def forget(self, entry: Entry) -> None:
        if self._entries.get(entry.digest) is entry:
            del self._entries[entry.digest]
            self._total_bytes -= entry.size
            CACHE_ENTRIES.dec()

    def pin(self, entry: Entry) -> FetchedLayer:
        entry.refs += 1
        if self._entries.get(entry.digest) is entry:
            self._entries.move_to_end(entry.digest)
        return FetchedLayer(self, entry)

    def unpin(self, entry: Entry) -> None:
        entry.refs -= 1
        if entry.refs == 0:
            self.evict()

    def evict(self) -> None:
        if self._total_bytes <= self._max_bytes:
            return
        for entry in list(self._entries.values()):
            if self._total_bytes <= self._max_bytes:
                break
            if entry.refs > 0 or entry.digest in self._in_flight:
                continue
            self.forget(entry)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
            log.debug("evicted layer %s (%d bytes)", entry.digest, entry.size)

    def close(self) -> None:
        """Forgets every entry; the files stay for the next start."""
        CACHE_ENTRIES.dec(len(self._entries))
        self._entries.clear()
        self._total_bytes = 0


def file_matches(path: Path, digest: str) -> bool:
    algo, _, expected = digest.partition(":")
    hasher = hashlib.new(algo)
    with path.open("rb") as blob:
        while chunk := blob.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest() == expected
