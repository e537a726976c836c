"""Which compression a blob uses: sniffed from its first bytes, promised by its Content-Type."""

from __future__ import annotations

from typing import Literal

from clair_indexer.fetch._errors import FetchError

Compression = Literal["gzip", "zstd", "none"]


def sniff_compression(head: bytes) -> Compression:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "none"


def declared_compression(content_type: str) -> Compression | None:
    """Compression a response's Content-Type promises; None for generic types that promise nothing.

    The accepted list is claircore's (libindex/fetcher.go) plus Docker's foreign-layer type.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("", "text/plain", "application/octet-stream", "binary/octet-stream"):
        return None
    if media in ("application/gzip", "application/x-gzip") or media.endswith(
        (".tar+gzip", ".tar.gzip")
    ):
        return "gzip"
    if media == "application/zstd" or media.endswith(".tar+zstd"):
        return "zstd"
    if media == "application/x-tar" or media.endswith(".tar"):
        return "none"
    raise FetchError(f"unknown content-type {media!r}", client_error=True)


def declared_or_error(content_type: str, digest: str) -> Compression | None:
    try:
        return declared_compression(content_type)
    except FetchError as exc:
        raise FetchError(f"layer {digest}: {exc}", client_error=True) from None


def check_compression(declared: Compression | None, head: bytes, digest: str) -> None:
    sniffed = sniff_compression(head)
    if declared is not None and sniffed != declared:
        raise FetchError(
            f"layer {digest}: content-type promises {declared} but the blob is {sniffed}",
            client_error=True,
        )
