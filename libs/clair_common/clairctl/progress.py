"""One live status line on stderr while images resolve, index and match; silent on a pipe."""

from __future__ import annotations

import sys
from typing import TextIO

# The indexer's states (Clair's IndexReport.state) in words.
_STATES = {
    "CheckManifest": "checking the manifest",
    "FetchLayers": "fetching layers",
    "FetchingLayers": "fetching layers",
    "ScanLayers": "scanning layers",
    "ScanningLayers": "scanning layers",
    "Coalesce": "coalescing",
    "Coalescing": "coalescing",
    "IndexFinished": "indexed",
}


class Progress:
    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._shown = False

    def status(self, name: str, text: str) -> None:
        if not self.enabled:
            return
        self.stream.write(f"\r\x1b[K{name}: {_STATES.get(text, text)}")
        self.stream.flush()
        self._shown = True

    def indexer_state(self, name: str) -> _StateSink:
        return _StateSink(self, name)

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


class _StateSink:
    def __init__(self, progress: Progress, name: str) -> None:
        self._progress, self._name = progress, name

    def __call__(self, state: str) -> None:
        self._progress.status(self._name, state)
