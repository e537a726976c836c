"""Where each image of a command comes from: a registry reference or an archive on disk."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from clair_common.clairctl.archive import ArchiveImage, read_archive
from clair_common.clairctl.blobserver import BlobServer
from clair_common.clairctl.reference import parse_reference
from clair_common.clairctl.registry import RegistryClient, parse_platform
from clair_common.models import Layer, Manifest

ManifestFactory = Callable[[], Awaitable[Manifest]]


def _from_registry(registry: RegistryClient, name: str) -> ManifestFactory:
    async def build() -> Manifest:
        return await registry.manifest(parse_reference(name))

    return build


def _from_archive(server: BlobServer, image: ArchiveImage) -> ManifestFactory:
    async def build() -> Manifest:
        return Manifest(image.digest, [Layer(d, server.url(d)) for d, _ in image.layers])

    return build


@asynccontextmanager
async def image_sources(
    args: argparse.Namespace, registry: RegistryClient
) -> AsyncIterator[list[tuple[str, ManifestFactory]]]:
    """(name, manifest builder) per image; archive blobs are served until the block ends."""
    out = [(name, _from_registry(registry, name)) for name in args.images or ()]
    archives = getattr(args, "archive", None) or []
    if not archives:
        yield out
        return
    platform = parse_platform(args.platform) if args.platform else None
    images: list[ArchiveImage] = []
    for path in archives:
        images.extend(read_archive(Path(path), platform))
    server = BlobServer({d: b for image in images for d, b in image.layers}, args.serve_addr)
    await server.start()
    try:
        yield out + [(image.name, _from_archive(server, image)) for image in images]
    finally:
        await server.close()
