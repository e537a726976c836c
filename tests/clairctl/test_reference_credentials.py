"""Image reference normalization and the auth-file search, as Docker and Podman do them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from clair_common.clairctl.credentials import CredentialError, Credentials, find_credentials
from clair_common.clairctl.reference import Reference, ReferenceError, parse_reference


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("alpine", Reference("docker.io", "library/alpine", "latest")),
        ("alpine:3.18", Reference("docker.io", "library/alpine", "3.18")),
        ("quay.io/clair/app", Reference("quay.io", "clair/app", "latest")),
        ("localhost:5000/a/b:v1", Reference("localhost:5000", "a/b", "v1")),
        ("user/app", Reference("docker.io", "user/app", "latest")),
        (
            "127.0.0.1:5000/x@sha256:" + "a" * 64,
            Reference("127.0.0.1:5000", "x", None, "sha256:" + "a" * 64),
        ),
    ],
)
def test_parse_reference(text: str, want: Reference) -> None:
    assert parse_reference(text) == want


@pytest.mark.parametrize("text", ["", "UPPER/case", "a:b:c:d", "x@sha256:zz", " a"])
def test_bad_references(text: str) -> None:
    with pytest.raises(ReferenceError):
        parse_reference(text)


def test_loopback_and_api_host() -> None:
    assert parse_reference("localhost:5000/a").is_loopback()
    assert parse_reference("127.0.0.1:5000/a").is_loopback()
    assert not parse_reference("quay.io/a").is_loopback()
    assert parse_reference("alpine").api_host == "registry-1.docker.io"


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_search_order_and_keys(tmp_path: Path) -> None:
    podman = tmp_path / "run" / "containers" / "auth.json"
    podman.parent.mkdir(parents=True)
    podman.write_text(json.dumps({"auths": {"quay.io/team": _auth("podman", "p")}}))
    docker = tmp_path / "home" / ".docker" / "config.json"
    docker.parent.mkdir(parents=True)
    docker.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": _auth("hub", "h"),
                    "quay.io": _auth("docker", "d"),
                    "https://reg.example:5000": {"identitytoken": "refresh"},
                }
            }
        )
    )
    env = {"HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    # Podman's file first, and its namespace-specific key applies only under that namespace.
    assert find_credentials("quay.io", "team/app", env) == Credentials("podman", "p")
    assert find_credentials("quay.io", "other/app", env) == Credentials("docker", "d")
    assert find_credentials("docker.io", "library/alpine", env) == Credentials("hub", "h")
    assert find_credentials("reg.example:5000", "x", env) == Credentials(identity_token="refresh")
    assert find_credentials("nowhere.example", "x", env) is None


def test_bad_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "auth.json"
    bad.write_text("{not json")
    with pytest.raises(CredentialError, match=str(bad)):
        find_credentials("quay.io", "a", {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(bad)})
    missing_helper = tmp_path / "c.json"
    missing_helper.write_text(json.dumps({"credsStore": "nonexistent-helper-xyz"}))
    with pytest.raises(CredentialError, match="docker-credential-nonexistent-helper-xyz"):
        find_credentials(
            "quay.io", "a", {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(missing_helper)}
        )
