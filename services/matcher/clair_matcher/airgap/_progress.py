"""A live status line for export and import."""

from __future__ import annotations

import logging
import sys
import time
from typing import IO

log = logging.getLogger("clair.clairctl.airgap")


class Progress:
    """A live status line on a terminal (records/s, MB read); silent when not a TTY."""

    def __init__(self, verb: str, stream: IO[str] | None = None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.verb = verb
        self.records = 0
        self.bytes_read = 0
        self._start = time.monotonic()
        self._drawn = 0.0

    def add(self, records: int) -> None:
        self.records += records
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.2:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.records / max(now - self._start, 1e-6)
        text = f"{self.verb} {self.records:,} records ({rate:,.0f}/s)"
        if self.bytes_read:
            text += f", {self.bytes_read / 1e6:,.1f} MB read"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()

    def note(self, message: str) -> None:
        """A permanent line (above the live one)."""
        if self.enabled:
            self.stream.write("\r\x1b[K" + message + "\n")
            self._draw(time.monotonic())
        else:
            log.info("%s", message)

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
