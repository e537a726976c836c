"""The registry client against real registries: anonymous, token and Basic auth, helpers,
multi-platform indexes; the Authorization it hands the indexer really fetches the layers."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import aiohttp
import pytest

from clair_common.clairctl.credentials import Credentials, find_credentials
from clair_common.clairctl.reference import parse_reference
from clair_common.clairctl.registry import (
    Platform,
    RegistryClient,
    RegistryError,
    host_platform,
)
from clair_common.models import Manifest
from tests.fixtures.images import build_layer
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.registry_auth import PASSWORD, USERNAME, AuthRegistries, docker_config


def _layer(tag: str) -> bytes:
    return build_layer({"etc/os-release": f"ID=test\nVERSION_ID={tag}\n"})


async def _fetch_all(manifest: Manifest) -> None:
    """What the indexer does with the Manifest: GET each layer with its headers."""
    async with aiohttp.ClientSession() as http:
        for layer in manifest.layers:
            headers = {k: v[0] for k, v in layer.headers.items()}
            async with http.get(layer.uri, headers=headers) as resp:
                assert resp.status == 200, (layer.uri, resp.status)
                body = await resp.read()
            assert "sha256:" + hashlib.sha256(body).hexdigest() == layer.hash


def _client(env: dict[str, str], **kwargs: object) -> RegistryClient:
    return RegistryClient(
        credentials=lambda reg, repo: find_credentials(reg, repo, env),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_anonymous_registry(registry: LocalRegistry) -> None:
    pushed = await registry.push_image("clairctl/anon", [_layer("1"), _layer("2")], tag="v1")
    host = registry.base_url.removeprefix("http://")
    client = _client({"HOME": "/nonexistent"})
    try:
        got = await client.manifest(parse_reference(f"{host}/clairctl/anon:v1"))
        by_digest = await client.manifest(parse_reference(f"{host}/clairctl/anon@{pushed.hash}"))
    finally:
        await client.close()
    assert got.hash == pushed.hash == by_digest.hash
    assert [layer.hash for layer in got.layers] == [layer.hash for layer in pushed.layers]
    assert all(layer.headers == {} for layer in got.layers)
    await _fetch_all(got)


async def test_token_auth_with_docker_config(
    auth_registries: AuthRegistries, tmp_path: Path
) -> None:
    pushed = await auth_registries.open.push_image("clairctl/token", [_layer("t")], tag="v1")
    host = auth_registries.host(auth_registries.token_url)
    env = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(docker_config(tmp_path / "d", [host]))}
    before = auth_registries.tokens.requests["granted"]
    client = _client(env)
    try:
        got = await client.manifest(parse_reference(f"{host}/clairctl/token:v1"))
    finally:
        await client.close()
    assert got.hash == pushed.hash
    assert auth_registries.tokens.requests["granted"] == before + 1
    (auth,) = got.layers[0].headers["Authorization"]
    assert auth.startswith("Bearer ")
    await _fetch_all(got)
    # Without the header the registry refuses the layer: the header is what lets it through.
    async with aiohttp.ClientSession() as http, http.get(got.layers[0].uri) as resp:
        assert resp.status == 401


async def test_token_auth_without_credentials_names_the_login_command(
    auth_registries: AuthRegistries, tmp_path: Path
) -> None:
    await auth_registries.open.push_image("clairctl/token", [_layer("t")], tag="v1")
    host = auth_registries.host(auth_registries.token_url)
    client = _client({"HOME": str(tmp_path)})
    try:
        with pytest.raises(RegistryError, match=f"docker login {host}"):
            await client.manifest(parse_reference(f"{host}/clairctl/token:v1"))
    finally:
        await client.close()


async def test_basic_auth_through_a_credential_helper(
    auth_registries: AuthRegistries, tmp_path: Path
) -> None:
    pushed = await auth_registries.open.push_image("clairctl/basic", [_layer("b")], tag="v1")
    host = auth_registries.host(auth_registries.basic_url)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-clairtest"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'[ "$server" = "{host}" ] || {{ echo "credentials not found"; exit 1; }}\n'
        f'printf \'{{"ServerURL":"%s","Username":"{USERNAME}","Secret":"{PASSWORD}"}}\' "$server"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"credHelpers": {host: "clairtest"}}))
    env = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(config)}
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}:{old_path}"
    client = _client(env)
    try:
        got = await client.manifest(parse_reference(f"{host}/clairctl/basic:v1"))
    finally:
        os.environ["PATH"] = old_path
        await client.close()
    assert got.hash == pushed.hash
    assert got.layers[0].headers["Authorization"] == [Credentials(USERNAME, PASSWORD).basic()]
    await _fetch_all(got)


async def test_basic_auth_wrong_password(auth_registries: AuthRegistries, tmp_path: Path) -> None:
    await auth_registries.open.push_image("clairctl/basic", [_layer("b")], tag="v1")
    host = auth_registries.host(auth_registries.basic_url)
    client = RegistryClient(credentials=lambda reg, repo: Credentials(USERNAME, "wrong"))
    try:
        with pytest.raises(RegistryError, match="refused the credentials"):
            await client.manifest(parse_reference(f"{host}/clairctl/basic:v1"))
    finally:
        await client.close()


async def test_multi_platform_index(registry: LocalRegistry) -> None:
    amd = await registry.push_image("clairctl/multi", [_layer("amd64")], tag="amd")
    arm = await registry.push_image("clairctl/multi", [_layer("arm64")], tag="arm")
    registry.push_index_sync(
        "clairctl/multi", {"linux/amd64": amd, "linux/arm64/v8": arm}, tag="multi"
    )
    host = registry.base_url.removeprefix("http://")
    ref = parse_reference(f"{host}/clairctl/multi:multi")
    chosen = {}
    for plat in (Platform("linux", "arm64"), Platform("linux", "amd64"), host_platform()):
        client = RegistryClient(platform=plat)
        try:
            chosen[str(plat)] = (await client.manifest(ref)).hash
        finally:
            await client.close()
    assert chosen["linux/arm64"] == arm.hash
    assert chosen["linux/amd64"] == amd.hash
    if str(host_platform()) in ("linux/amd64", "linux/arm64"):
        assert chosen[str(host_platform())] in (amd.hash, arm.hash)
    client = RegistryClient(platform=Platform("linux", "s390x"))
    try:
        with pytest.raises(RegistryError, match=r"linux/amd64, linux/arm64/v8.*--platform"):
            await client.manifest(ref)
    finally:
        await client.close()


async def test_not_found_and_unreachable(registry: LocalRegistry) -> None:
    host = registry.base_url.removeprefix("http://")
    client = RegistryClient()
    try:
        with pytest.raises(RegistryError, match="image not found"):
            await client.manifest(parse_reference(f"{host}/clairctl/nothing:here"))
        with pytest.raises(RegistryError, match=r"cannot reach registry 127\.0\.0\.1:9"):
            await client.manifest(parse_reference("127.0.0.1:9/clairctl/x:y"))
    finally:
        await client.close()
