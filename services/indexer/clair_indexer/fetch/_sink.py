"""Where a download's bytes go on disk: straight into the cache file, or written behind a scan.

A scan reading the stream (a tap) must not wait for the disk: once the page cache is full of
dirty pages, writes run at the disk's pace (here 450 MB/s, a third of the download's), and an
uncompressed layer's indexing took 4x its verified download. So while a scan streams, the
cache copy is written by a thread of its own from a backlog shared by every download; when
the backlog is full the disk is too slow for this copy and it is given up (the blob is then
simply not cached). Without a scan the file is what the caller waits for: written directly.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Protocol

log = logging.getLogger("clair_indexer.fetch")

# Bytes received but not yet written, over all downloads: the memory write-behind may hold.
WRITE_BEHIND_BYTES = 64 << 20


class Sink(Protocol):
    def write(self, data: bytes) -> None:
        """Called in download order from one thread at a time."""

    def close(self) -> bool:
        """Blocks until written; True when the file holds every byte written."""

    def abort(self) -> None:
        """Stops without finishing; the caller removes the file."""


class Backlog:
    """A byte budget shared by threads (the write-behind sinks of concurrent downloads)."""

    def __init__(self, limit: int = WRITE_BEHIND_BYTES) -> None:
        self._limit = limit
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def take(self, size: int) -> bool:
        with self._lock:
            if self._held + size > self._limit:
                return False
            self._held += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self._held -= size


class DirectWrite:
    def __init__(self, fd: int) -> None:
        self._out = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self._out.write(data)

    def close(self) -> bool:
        self._out.close()
        return True

    def abort(self) -> None:
        self._out.close()


class WriteBehind:
    def __init__(self, fd: int, backlog: Backlog, name: str) -> None:
        self._out = os.fdopen(fd, "wb")
        self._backlog = backlog
        self._name = name
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._given_up = False
        self._ended = False
        self._error: OSError | None = None
        # A write racing abort() (its download cancelled mid-chunk) must not queue bytes
        # behind the end marker: they would hold their share of the backlog for good.
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, name="layer-write", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._given_up or self._ended or not data:
                return
            if not self._backlog.take(len(data)):
                self._give_up(f"the disk fell {self._backlog.held >> 20} MiB behind the download")
                return
            self._queue.put(data)

    def close(self) -> bool:
        self._end()
        self._thread.join()
        if self._error is not None:
            log.warning("%s: not cached: %s", self._name, self._error)
            return False
        return not self._given_up

    def abort(self) -> None:
        with self._lock:
            self._given_up = True
        self._end()  # the thread closes the file once it got here

    def _end(self) -> None:
        with self._lock:
            if not self._ended:
                self._ended = True
                self._queue.put(None)

    def _give_up(self, why: str) -> None:
        self._given_up = True
        log.info("%s: not cached: %s", self._name, why)

    def _drain(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                try:
                    if not self._given_up and self._error is None:
                        self._out.write(data)
                except OSError as exc:
                    self._error = exc
                finally:
                    self._backlog.give(len(data))
        finally:
            self._out.close()
