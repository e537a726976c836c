"""A reader fed by the download while it is still running, so a layer is scanned as it arrives.

The producer (the download's hashing thread) `feed`s chunks; the consumer (a scanning thread)
reads them as a file. The queue is bounded, so memory stays a few chunks whatever the layer's
size; a consumer that stops early `abandon`s the tap and the producer drops the rest, or, when
the consumer failed, stops the download (`ConsumerGaveUp`): an endless or huge body of garbage
must not be downloaded to the end.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading

_MAX_CHUNKS = 16


class TapBroken(Exception):
    """The stream was cut (the download is being retried or failed); read the cached file."""


class ConsumerGaveUp(Exception):
    """Raised to the producer: the consumer failed on the stream, so the rest is not wanted."""


class _End:
    pass


_EOF = _End()
_POLL_SECONDS = 0.5
_MAX_IDLE_SECONDS = 600.0  # beyond any read timeout of the download itself


class StreamTap(io.RawIOBase):
    def __init__(self, max_chunks: int = _MAX_CHUNKS) -> None:
        super().__init__()
        self._queue: queue.Queue[bytes | _End | BaseException] = queue.Queue(max_chunks)
        self._abandoned = threading.Event()
        self._consumer_failed = False
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
        if self._consumer_failed:
            raise ConsumerGaveUp("the scan failed on the layer while it downloaded")
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
        idle = 0.0
        while not self._buffer:
            if self._done:
                return 0
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                # Never wait forever: an abandoned tap (fetcher closing, scan cancelled) or a
                # producer that stopped without a word must not pin this thread until exit.
                if self._abandoned.is_set():
                    self._done = True
                    raise TapBroken("the stream was abandoned") from None
                idle += _POLL_SECONDS
                if idle >= _MAX_IDLE_SECONDS:
                    self._done = True
                    raise TapBroken("no data from the download for too long") from None
                continue
            idle = 0.0
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

    def abandon(self, *, failed: bool = False) -> None:
        """The consumer is done (`failed`: with an error); unblock and silence the producer."""
        self._consumer_failed = self._consumer_failed or failed
        self._abandoned.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        # A consumer that has not started reading must not wait for items that never come
        # (draining may have taken the producer's end-of-stream or failure marker).
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(TapBroken("the stream was abandoned"))
