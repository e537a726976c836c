"""End to end: `clairctl report|sbom|manifest|delete` against a running server, real images
pushed to the local registry (token auth on), every format validated against its schema."""

from __future__ import annotations

import json
from pathlib import Path

from tests.clairctl.stack import Stack, stack
from tests.fixtures.registry_auth import AuthRegistries, docker_config

__all__ = ["stack"]


async def _push(auth: AuthRegistries, stack: Stack, key: str) -> str:
    await auth.open.push_image(f"e2e/{key}", [stack.layers[key]], tag="1.0")
    return f"{auth.host(auth.token_url)}/e2e/{key}:1.0"


def _env(tmp_path: Path, auth: AuthRegistries) -> dict[str, str]:
    import os

    config = docker_config(tmp_path / "docker", [auth.host(auth.token_url)])
    return {**os.environ, "HOME": str(tmp_path), "DOCKER_CONFIG": str(config)}


async def test_table(stack: Stack, auth_registries: AuthRegistries, tmp_path: Path) -> None:
    ref = await _push(auth_registries, stack, "pypi")
    code, out, err = await stack.clairctl(
        *stack.report_args(ref), env=_env(tmp_path, auth_registries)
    )
    print(out, err)
    assert code == 0, err
    assert False
