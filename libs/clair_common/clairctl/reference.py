"""Image references as Docker spells them: `[registry/]repository[:tag][@digest]`."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")


class ReferenceError(ValueError):
    """An image reference that does not parse; the message says why."""


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port] as written (docker.io for Docker Hub)
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host the Registry v2 API answers on."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def version(self) -> str:
        """What to ask `/manifests/` for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def is_loopback(self) -> bool:
        host = self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else ""
        if self.registry.startswith("["):
            host = self.registry[1:].split("]", 1)[0]
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str) -> Reference:
    """Docker's normalization: `alpine` is `docker.io/library/alpine:latest`."""
    if not text or text != text.strip():
        raise ReferenceError(f"invalid image reference {text!r}")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ReferenceError(f"{text}: invalid digest {digest!r}")
    registry = DOCKER_HUB
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, rest = first, remainder
    tag = None
    name, colon, maybe_tag = rest.rpartition(":")
    if colon and "/" not in maybe_tag:
        if not _TAG.match(maybe_tag):
            raise ReferenceError(f"{text}: invalid tag {maybe_tag!r}")
        rest, tag = name, maybe_tag
    if registry == DOCKER_HUB and "/" not in rest:
        rest = f"library/{rest}"
    if not rest or not all(_COMPONENT.match(part) for part in rest.split("/")):
        raise ReferenceError(
            f"{text}: invalid repository name {rest!r} (lowercase letters, digits, . _ - /)"
        )
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, rest, tag, digest)
