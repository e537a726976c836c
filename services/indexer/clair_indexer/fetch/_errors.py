"""The fetcher's failures: what callers see, and what the retry loop retries."""

from __future__ import annotations


class FetchError(Exception):
    """A layer could not be fetched; `client_error` is True when the manifest is at fault."""

    def __init__(self, message: str, *, client_error: bool = False) -> None:
        super().__init__(message)
        self.client_error = client_error


class AirgapError(FetchError):
    """`indexer.airgap` forbids the layer's host (it is neither loopback nor private)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, client_error=True)


class Transient(Exception):
    """A failure worth retrying (connection trouble, timeout, 429, 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotCached(Exception):
    """A verified download a scan read as it streamed, whose cache copy was given up (the
    disk fell behind): the scan stands; whoever wanted the file must download it again."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"layer {digest}: verified but not cached")
