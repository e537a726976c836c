"""Images on disk: `docker save` tarballs and OCI image layout directories.

Each image yields its manifest digest and layer blobs, located as byte ranges (a member of the
tarball, or a file of the layout) so they can be served without extracting anything. A legacy
`docker save` has no manifest digest; it is the digest of the OCI manifest we derive from its
config and layers, so the same tarball always names the same manifest.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clair_common.clairctl.registry import INDEX_TYPES, OCI_MANIFEST, Platform, host_platform
from clair_common.models import is_digest

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


class ArchiveError(ValueError):
    """An archive that cannot be read as an image; the message names the file and entry."""


@dataclass(frozen=True)
class Blob:
    path: Path  # the tarball or the layout file
    offset: int
    size: int


@dataclass(frozen=True)
class ArchiveImage:
    name: str
    digest: str
    layers: list[tuple[str, Blob]]  # (layer digest, where its bytes are)


def _sha256_range(blob: Blob) -> str:
    h = hashlib.sha256()
    with blob.path.open("rb") as fh:
        fh.seek(blob.offset)
        left = blob.size
        while left:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                raise ArchiveError(f"{blob.path}: truncated")
            h.update(chunk)
            left -= len(chunk)
    return "sha256:" + h.hexdigest()


class _Source:
    """Files by name: members of a tarball, or files under a layout directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._members: dict[str, tarfile.TarInfo] = {}
        if path.is_dir():
            return
        try:
            with tarfile.open(path, "r:") as tar:  # docker save writes plain tar
                for member in tar:
                    if member.isfile():
                        self._members[member.name.removeprefix("./")] = member
        except (OSError, tarfile.TarError) as exc:
            raise ArchiveError(f"{path}: not a tar archive or OCI layout: {exc}") from exc

    def has(self, name: str) -> bool:
        return (self.path / name).is_file() if self.path.is_dir() else name in self._members

    def blob(self, name: str) -> Blob:
        if self.path.is_dir():
            file = self.path / name
            if not file.is_file():
                raise ArchiveError(f"{self.path}: missing {name}")
            return Blob(file, 0, file.stat().st_size)
        member = self._members.get(name)
        if member is None:
            raise ArchiveError(f"{self.path}: missing {name}")
        return Blob(self.path, member.offset_data, member.size)

    def read(self, name: str) -> bytes:
        blob = self.blob(name)
        with blob.path.open("rb") as fh:
            fh.seek(blob.offset)
            return fh.read(blob.size)

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError as exc:
            raise ArchiveError(f"{self.path}: {name} is not JSON") from exc


def _blob_name(digest: str) -> str:
    algo, _, hexdigest = digest.partition(":")
    return f"blobs/{algo}/{hexdigest}"


def _oci_images(src: _Source, platform: Platform) -> list[ArchiveImage]:
    index = src.json("index.json")
    out = []
    for i, desc in enumerate(index.get("manifests") or []):
        digest = desc.get("digest", "")
        if not is_digest(digest):
            raise ArchiveError(f"{src.path}: index.json manifests[{i}]: invalid digest")
        annotations = desc.get("annotations") or {}
        name = (
            annotations.get("io.containerd.image.name")
            or annotations.get("org.opencontainers.image.ref.name")
            or f"{src.path.name}#{i}"
        )
        manifest = src.json(_blob_name(digest))
        if desc.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            digest = _pick(src, manifest, platform)
            manifest = src.json(_blob_name(digest))
        layers = []
        for layer in manifest.get("layers") or []:
            layer_digest = layer.get("digest", "")
            if not is_digest(layer_digest):
                raise ArchiveError(f"{src.path}: {digest}: a layer has an invalid digest")
            layers.append((layer_digest, src.blob(_blob_name(layer_digest))))
        if not layers:
            raise ArchiveError(f"{src.path}: {name}: the manifest lists no layers")
        out.append(ArchiveImage(str(name), digest, layers))
    return out


def _pick(src: _Source, index: dict[str, Any], want: Platform) -> str:
    for desc in index.get("manifests") or []:
        plat = desc.get("platform") or {}
        same = (plat.get("os"), plat.get("architecture")) == (want.os, want.architecture)
        variant_ok = not want.variant or plat.get("variant") in (None, "", want.variant)
        if same and variant_ok and src.has(_blob_name(desc.get("digest", ""))):
            return str(desc["digest"])
    raise ArchiveError(f"{src.path}: no image for platform {want}; choose one with --platform")


def _docker_images(src: _Source) -> list[ArchiveImage]:
    entries = src.json("manifest.json")
    if not isinstance(entries, list):
        raise ArchiveError(f"{src.path}: manifest.json: expected a list")
    out = []
    for i, entry in enumerate(entries):
        config_name = entry.get("Config", "")
        config = src.read(config_name)
        layers = []
        descriptors = []
        for name in entry.get("Layers") or []:
            blob = src.blob(name)
            digest = _sha256_range(blob)  # legacy layer.tar files are not named by digest
            layers.append((digest, blob))
            descriptors.append({"mediaType": OCI_LAYER, "digest": digest, "size": blob.size})
        if not layers:
            raise ArchiveError(f"{src.path}: manifest.json[{i}] lists no layers")
        derived = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                    "size": len(config),
                },
                "layers": descriptors,
            },
            separators=(",", ":"),
        ).encode()
        tags = entry.get("RepoTags") or []
        name = tags[0] if tags else f"{src.path.name}#{i}"
        out.append(ArchiveImage(name, "sha256:" + hashlib.sha256(derived).hexdigest(), layers))
    return out


def read_archive(path: Path, platform: Platform | None = None) -> list[ArchiveImage]:
    if not path.exists():
        raise ArchiveError(f"{path}: no such file or directory")
    src = _Source(path)
    if src.has("index.json") and src.has("oci-layout"):
        return _oci_images(src, platform or host_platform())
    if src.has("manifest.json"):
        return _docker_images(src)
    raise ArchiveError(
        f"{path}: neither an OCI layout (index.json, oci-layout) nor a `docker save` tarball"
        " (manifest.json)"
    )
