"""A Registry v2 client: resolve an image reference to Clair's Manifest.

Anonymous, Basic and Bearer-token challenges are answered as Docker does (one retry after a
401); a multi-platform index is narrowed to one platform (default the host's). The layers'
URLs carry the `Authorization` header that worked, so the indexer can fetch them too.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from clair_common.clairctl.credentials import Credentials, find_credentials
from clair_common.clairctl.reference import Reference
from clair_common.clairctl.session import LazySession
from clair_common.models import Layer, Manifest, is_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST))

CredentialLookup = Callable[[str, str], Credentials | None]


class RegistryError(RuntimeError):
    """A registry failure, worded with what to do next."""


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_MACHINES = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def host_platform() -> Platform:
    arch, variant = _MACHINES.get(platform.machine().lower(), (platform.machine().lower(), ""))
    return Platform("linux", arch, variant)


def parse_platform(text: str) -> Platform:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"--platform {text!r}: expected OS/ARCH[/VARIANT], e.g. linux/arm64")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="..."` → ("bearer", {realm, service, ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    i = 0
    while i < len(rest):
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip(" ,").lower()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            end = rest.find('"', i + 1)
            end = len(rest) if end < 0 else end
            params[key] = rest[i + 1 : end]
            i = end + 1
        else:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
        i += 1 if i < len(rest) and rest[i] == "," else 0
    return scheme.lower(), params


class RegistryClient:
    def __init__(
        self,
        *,
        insecure: bool = False,
        credentials: CredentialLookup = find_credentials,
        platform: Platform | None = None,
    ) -> None:
        self._insecure = insecure
        self._credentials = credentials
        self.platform = platform or host_platform()
        self._auth: dict[tuple[str, str], str] = {}  # (host, repository) → Authorization
        self._session = LazySession(aiohttp.ClientTimeout(total=120, sock_connect=15))

    def base_url(self, ref: Reference) -> str:
        scheme = "http" if self._insecure or ref.is_loopback() else "https"
        return f"{scheme}://{ref.api_host}"

    async def manifest(self, ref: Reference) -> Manifest:
        """Clair's Manifest of the image (the platform's manifest when `ref` is an index)."""
        body, media_type = await self._get_manifest(ref, ref.version)
        doc = _decode(ref, body)
        if media_type in INDEX_TYPES or (not media_type and "manifests" in doc):
            digest = self._choose(ref, doc)
            body, media_type = await self._get_manifest(ref, digest)
            doc = _decode(ref, body)
        else:
            digest = ref.digest or "sha256:" + hashlib.sha256(body).hexdigest()
        if doc.get("schemaVersion") == 1:
            raise RegistryError(f"{ref}: Docker schema 1 manifests are not supported")
        descriptors = doc.get("layers")
        if not isinstance(descriptors, list) or not descriptors:
            raise RegistryError(f"{ref}: the manifest lists no layers (not a container image?)")
        base = self.base_url(ref)
        auth = self._auth.get((ref.api_host, ref.repository))
        headers = {"Authorization": [auth]} if auth else {}
        layers = []
        for i, desc in enumerate(descriptors):
            layer_digest = desc.get("digest") if isinstance(desc, dict) else None
            if not isinstance(layer_digest, str) or not is_digest(layer_digest):
                raise RegistryError(f"{ref}: layers[{i}] has no valid digest")
            url = f"{base}/v2/{ref.repository}/blobs/{layer_digest}"
            layers.append(Layer(layer_digest, url, dict(headers)))
        return Manifest(digest, layers)

    def _choose(self, ref: Reference, index: dict[str, Any]) -> str:
        want = self.platform
        found: list[str] = []
        for entry in index.get("manifests") or []:
            plat = entry.get("platform") or {}
            have = Platform(
                plat.get("os", ""), plat.get("architecture", ""), plat.get("variant", "")
            )
            found.append(str(have))
            if (have.os, have.architecture) != (want.os, want.architecture):
                continue
            if want.variant and have.variant and want.variant != have.variant:
                continue
            digest = entry.get("digest")
            if isinstance(digest, str) and is_digest(digest):
                return digest
        raise RegistryError(
            f"{ref}: no image for platform {want} (the index has {', '.join(found) or 'none'});"
            " choose one with --platform"
        )

    async def _get_manifest(self, ref: Reference, version: str) -> tuple[bytes, str]:
        url = f"{self.base_url(ref)}/v2/{ref.repository}/manifests/{version}"
        status, body, headers = await self._request(ref, url, {"Accept": ACCEPT})
        if status == 404:
            raise RegistryError(
                f"image not found: {ref} ({ref.api_host} has no manifest {version!r}"
                f" in {ref.repository}); check the name and tag"
            )
        if status != 200:
            raise RegistryError(f"{ref}: GET {url}: status {status}: {body[:200]!r}")
        if version.startswith("sha256:"):
            actual = "sha256:" + hashlib.sha256(body).hexdigest()
            if actual != version:
                raise RegistryError(f"{ref}: manifest digest is {actual}, asked for {version}")
        return body, headers.get("Content-Type", "").split(";")[0].strip()

    async def _request(
        self, ref: Reference, url: str, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        key = (ref.api_host, ref.repository)
        for attempt in range(2):
            sent = dict(headers)
            if key in self._auth:
                sent["Authorization"] = self._auth[key]
            status, body, got = await self._send("GET", url, sent, ref)
            if status != 401:
                return status, body, got
            if attempt == 0:
                self._auth[key] = await self._authenticate(ref, got.get("WWW-Authenticate", ""))
        login = f"docker login {ref.registry}"
        raise RegistryError(
            f"{ref.registry} refused the credentials for {ref.repository}"
            f" (401): check them with `{login}` or `podman login {ref.registry}`"
        )

    async def _authenticate(self, ref: Reference, challenge: str) -> str:
        scheme, params = _challenge(challenge)
        creds = self._credentials(ref.registry, ref.repository)
        if scheme == "basic":
            if creds is None or not (creds.username or creds.password):
                raise RegistryError(
                    f"{ref.registry} requires credentials: run `docker login {ref.registry}`"
                    " (or `podman login`), or set REGISTRY_AUTH_FILE"
                )
            return creds.basic()
        if scheme != "bearer" or not params.get("realm"):
            raise RegistryError(f"{ref.registry}: unsupported auth challenge {challenge!r}")
        return "Bearer " + await self._token(ref, params, creds)

    async def _token(
        self, ref: Reference, params: dict[str, str], creds: Credentials | None
    ) -> str:
        realm = params["realm"]
        scope = params.get("scope") or f"repository:{ref.repository}:pull"
        query = {"scope": scope, **({"service": params["service"]} if "service" in params else {})}
        session = self._client()
        try:
            if creds is not None and creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "clairctl",
                    **query,
                }
                resp_ctx = session.post(realm, data=form, ssl=self._ssl())
            else:
                hdrs = {"Authorization": creds.basic()} if creds and creds.username else {}
                resp_ctx = session.get(realm, params=query, headers=hdrs, ssl=self._ssl())
            async with resp_ctx as resp:
                body = await resp.read()
                status = resp.status
        except aiohttp.ClientError as exc:
            raise RegistryError(f"cannot reach the token service {realm}: {exc}") from exc
        if status in (401, 403):
            raise RegistryError(
                f"{ref.registry}: the token service refused the credentials ({status}):"
                f" run `docker login {ref.registry}` (or `podman login`)"
            )
        if status != 200:
            raise RegistryError(f"token service {realm}: status {status}: {body[:200]!r}")
        try:
            doc = orjson.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (orjson.JSONDecodeError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service {realm}: the answer holds no token")
        return token

    async def _send(
        self, method: str, url: str, headers: dict[str, str], ref: Reference
    ) -> tuple[int, bytes, dict[str, str]]:
        try:
            async with self._client().request(
                method, url, headers=headers, ssl=self._ssl()
            ) as resp:
                return resp.status, await resp.read(), dict(resp.headers)
        except aiohttp.ClientConnectorCertificateError as exc:
            raise RegistryError(
                f"cannot verify the TLS certificate of {ref.api_host}: {exc.certificate_error};"
                " for a registry you trust, use --insecure"
            ) from exc
        except aiohttp.ClientError as exc:
            hint = "" if self._insecure else " (for a plain-HTTP registry, use --insecure)"
            raise RegistryError(f"cannot reach registry {ref.api_host}: {exc}{hint}") from exc

    def _ssl(self) -> bool:
        return not self._insecure

    def _client(self) -> aiohttp.ClientSession:
        return self._session.get()

    async def close(self) -> None:
        await self._session.close()


def _decode(ref: Reference, body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RegistryError(f"{ref}: the registry sent a manifest that is not JSON") from exc
    if not isinstance(doc, dict):
        raise RegistryError(f"{ref}: the registry sent a manifest that is not a JSON object")
    return doc
