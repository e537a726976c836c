"""Registry credentials from the files Docker and Podman write, and their credential helpers.

Search order is Podman's (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
`~/.config/containers/auth.json`) then Docker's (`$DOCKER_CONFIG/config.json`,
`~/.docker/config.json`); the first file with an entry for the registry wins. Within a file a
`credHelpers` entry for the host beats `auths`, which beats the default `credsStore`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")


class CredentialError(RuntimeError):
    """An auth file or credential helper that cannot be used; the message names it."""


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token (Docker's `identitytoken`)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def auth_files(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    home = Path(env.get("HOME", str(Path.home())))
    out: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        out.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        out.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = Path(env.get("XDG_CONFIG_HOME", str(home / ".config")))
    out.append(config_home / "containers" / "auth.json")
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    out.append(docker_dir / "config.json")
    return out


def _keys_for(registry: str, repository: str) -> list[str]:
    """Most specific first: Podman allows `host/namespace` keys; Docker keys may be URLs."""
    if registry in ("docker.io", "registry-1.docker.io"):
        hosts: Iterable[str] = DOCKER_HUB_KEYS
    else:
        hosts = (registry,)
    keys: list[str] = []
    parts = repository.split("/")
    for host in hosts:
        keys.extend(f"{host}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1))
        keys.append(host)
    return keys


def _normalize(key: str) -> str:
    for scheme in ("https://", "http://"):
        if key.startswith(scheme):
            key = key[len(scheme) :]
    key = key.rstrip("/")
    return key.removesuffix("/v1").removesuffix("/v2")


def _from_entry(path: Path, key: str, entry: Any) -> Credentials:
    if not isinstance(entry, dict):
        raise CredentialError(f"{path}: auths.{key}: expected an object")
    if entry.get("identitytoken"):
        return Credentials(identity_token=str(entry["identitytoken"]))
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CredentialError(f"{path}: auths.{key}.auth: not base64 user:password") from exc
        return Credentials(user, password)
    return Credentials(str(entry.get("username", "")), str(entry.get("password", "")))


def run_helper(helper: str, server: str) -> Credentials | None:
    """`docker-credential-<helper> get`, as Docker calls it; None when it has no entry."""
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(
            [program, "get"], input=server.encode(), capture_output=True, timeout=30, check=False
        )
    except FileNotFoundError as exc:
        raise CredentialError(f"credential helper {program} is configured but not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise CredentialError(f"credential helper {program} did not answer in 30s") from exc
    if proc.returncode != 0:
        message = (proc.stdout or proc.stderr).decode(errors="replace").strip()
        if "credentials not found" in message.lower():
            return None
        raise CredentialError(f"credential helper {program} failed: {message[:200]}")
    try:
        doc = json.loads(proc.stdout)
    except ValueError as exc:
        raise CredentialError(f"credential helper {program}: output is not JSON") from exc
    username, secret = str(doc.get("Username", "")), str(doc.get("Secret", ""))
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


def _lookup_file(path: Path, registry: str, repository: str) -> Credentials | None:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CredentialError(f"{path}: cannot read auth file: {exc}") from exc
    if not isinstance(doc, dict):
        raise CredentialError(f"{path}: expected a JSON object")
    keys = _keys_for(registry, repository)
    helpers = {_normalize(k): v for k, v in (doc.get("credHelpers") or {}).items()}
    for key in keys:
        if key in helpers:
            return run_helper(str(helpers[key]), key)
    auths = {_normalize(k): (k, v) for k, v in (doc.get("auths") or {}).items()}
    for key in keys:
        if key in auths:
            raw_key, entry = auths[key]
            creds = _from_entry(path, raw_key, entry)
            if creds.username or creds.password or creds.identity_token:
                return creds
    if doc.get("credsStore"):
        server = DOCKER_HUB_KEYS[0] if keys[-1] in DOCKER_HUB_KEYS else registry
        return run_helper(str(doc["credsStore"]), server)
    return None


def find_credentials(
    registry: str, repository: str, env: Mapping[str, str] | None = None
) -> Credentials | None:
    for path in auth_files(env):
        found = _lookup_file(path, registry, repository)
        if found is not None:
            return found
    return None
