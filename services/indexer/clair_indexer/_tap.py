"""A reader fed by the download while it is still running, so a layer is scanned as it arrives.

The producer (the download's hashing thread) `feed`s chunks; the consumer (a scanning thread)
reads them as a file. The queue is bounded, so memory stays a few chunks whatever the layer's
size; a consumer that stops early `abandon`s the tap and the producer drops the rest.
"""

from __future__ import annotations

import io
import queue
import threading

_MAX_CHUNKS = 16


class TapBroken(Exception):
    """The stream was cut (the download is being retried or failed); read the cached file."""


class _End:
    pass


_EOF = _End()


class StreamTap(io.RawIOBase):
    def __init__(self, max_chunks: int = _MAX_CHUNKS) -> None:
        super().__init__()
        self._queue: queue.Queue[bytes | _End | BaseException] = queue.Queue(max_chunks)
        self._abandoned = threading.Event()
        self._finished = False  # producer side: nothing more may be fed
        self._buffer = memoryview(b"")
        self._done = False  # consumer side: end or error seen

    # -- producer ----------------------------------------------------------------------------

    def _put(self, item: bytes | _End | BaseException) -> None:
        while not self._abandoned.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def feed(self, data: bytes) -> None:
        if not self._finished and data:
            self._put(data)

    def finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._put(_EOF)

    def fail(self, reason: str) -> None:
        if not self._finished:
            self._finished = True
            self._put(TapBroken(reason))

    # -- consumer ----------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            if self._done:
                return 0
            item = self._queue.get()
            if isinstance(item, _End):
                self._done = True
                return 0
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._buffer = memoryview(item)
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def abandon(self) -> None:
        """The consumer is done; unblock and silence the producer."""
        self._abandoned.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
