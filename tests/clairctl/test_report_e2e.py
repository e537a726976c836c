"""End to end: `clairctl report|sbom|manifest|delete` against a running server, real images
pushed to the local registry behind token auth, every format validated against its schema."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from junitparser import Failure, JUnitXml
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from tests.clairctl.stack import Stack, sarif_schema, stack
from tests.common.test_openapi import validator
from tests.fixtures.feeds import pypa_advisories
from tests.fixtures.images import decompress, sha256_digest
from tests.fixtures.registry_auth import AuthRegistries, docker_config
from tests.matcher.test_enricher_kev_epss import kev_catalog

__all__ = ["stack"]


def _docker_save(path: Path, layer_tar: bytes, tag: str) -> None:
    """A `docker save` tarball as Docker before 25 wrote it: manifest.json, config, layer.tar."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer_tar)]},
        }
    ).encode()
    config_name = sha256_digest(config).split(":")[1] + ".json"
    layer_name = "0f" * 32 + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}])
    with tarfile.open(path, "w") as tar:
        for name, data in (
            (config_name, config),
            (layer_name, layer_tar),
            ("manifest.json", manifest.encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _oci_layout(root: Path, layer: bytes, name: str) -> None:
    """An OCI image layout directory (what `docker save` writes since Docker 25, untarred)."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = sha256_digest(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"io.containerd.image.name": name},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


async def _push(auth: AuthRegistries, stack: Stack, key: str) -> str:
    await auth.open.push_image(f"e2e/{key}", [stack.layers[key]], tag="1.0")
    return f"{auth.host(auth.token_url)}/e2e/{key}:1.0"


def _env(tmp_path: Path, auth: AuthRegistries) -> dict[str, str]:
    config = docker_config(tmp_path / "docker", [auth.host(auth.token_url)])
    return {**os.environ, "HOME": str(tmp_path), "DOCKER_CONFIG": str(config)}


async def _report(
    stack: Stack, auth: AuthRegistries, tmp_path: Path, key: str, *args: str
) -> tuple[int, str, str]:
    ref = await _push(auth, stack, key)
    return await stack.clairctl(*stack.report_args(ref, *args), env=_env(tmp_path, auth))


def _rows(table: str) -> list[list[str]]:
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SEVERITY"))
    return [line.split() for line in lines[start + 1 : -1]]


async def test_table(stack: Stack, auth_registries: AuthRegistries, tmp_path: Path) -> None:
    code, out, err = await _report(stack, auth_registries, tmp_path, "pypi")
    assert code == 0, err
    assert "\x1b[" not in out  # no colour on a pipe
    assert err == ""  # no progress on a pipe
    lines = out.splitlines()
    assert lines[0].endswith(": 8 packages")
    assert lines[1].split() == [
        "SEVERITY",
        "PACKAGE",
        "INSTALLED",
        "FIXED",
        "IN",
        "ADVISORY",
        "LINK",
    ]
    rows = _rows(out)
    order = ["Critical", "High", "Medium", "Low", "Negligible", "Unknown"]
    assert [order.index(r[0]) for r in rows] == sorted(order.index(r[0]) for r in rows)
    requests_row = next(r for r in rows if r[4] == "PYSEC-2018-28")
    assert requests_row[:5] == ["Unknown", "requests", "2.19.1", "2.20.0", "PYSEC-2018-28"]
    assert lines[-1].startswith(f"{len(rows)} vulnerabilities (")


async def test_fail_on_exit_codes(
    stack: Stack, auth_registries: AuthRegistries, tmp_path: Path
) -> None:
    code, out, _ = await _report(stack, auth_registries, tmp_path, "pypi", "--fail-on", "high")
    assert code == 3
    assert any(r[0] == "High" for r in _rows(out))
    code, _, _ = await _report(stack, auth_registries, tmp_path, "pypi", "--fail-on", "critical")
    assert code == 0
    code, out, err = await _report(stack, auth_registries, tmp_path, "alpine", "--fail-on", "high")
    assert code == 0, err
    assert _rows(out) and not any(r[0] in ("High", "Critical") for r in _rows(out))
    # An error is not a finding: exit 1, whatever --fail-on says.
    code, _, err = await stack.clairctl(
        "report", "--host", "http://127.0.0.1:9", "--fail-on", "high", "--archive", "missing.tar"
    )
    assert code == 1
    assert "missing.tar" in err


async def test_filters(stack: Stack, auth_registries: AuthRegistries, tmp_path: Path) -> None:
    code, out, _ = await _report(stack, auth_registries, tmp_path, "pypi", "--severity", "high")
    assert code == 0
    assert {r[0] for r in _rows(out)} == {"High"}
    assert "hidden by filters" in out.splitlines()[-1]
    code, out, _ = await _report(stack, auth_registries, tmp_path, "alpine", "--ignore-unfixed")
    assert code == 0
    assert all(r[3] != "(no" for r in _rows(out))


def _openvex(advisories: list[str], purl: str) -> dict[str, Any]:
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.invalid/vex/1",
        "author": "test",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": name},
                "products": [{"@id": purl}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
            }
            for name in advisories
        ],
    }


async def test_vex_suppresses_named_advisories(
    stack: Stack, auth_registries: AuthRegistries, tmp_path: Path
) -> None:
    code, out, _ = await _report(stack, auth_registries, tmp_path, "pypi")
    highs = [r for r in _rows(out) if r[0] == "High"]
    assert len(highs) >= 2
    first = highs[0]
    openvex = tmp_path / "one.openvex.json"
    openvex.write_text(json.dumps(_openvex([first[4]], f"pkg:pypi/{first[1]}")))
    code, out, err = await _report(
        stack, auth_registries, tmp_path, "pypi", "--vex", str(openvex), "--fail-on", "high"
    )
    assert code == 3  # the other High findings remain
    assert first[4] not in out
    assert "1 findings suppressed by VEX" in err
    assert "1 suppressed by VEX" in out.splitlines()[-1]

    # CycloneDX VEX clearing every High finding (by purl with version): the gate passes.
    cdx: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "vulnerabilities": [
            {
                "id": r[4],
                "analysis": {"state": "not_affected", "justification": "code_not_reachable"},
                "affects": [{"ref": f"pkg:pypi/{r[1]}@{r[2]}"}],
            }
            for r in highs
        ],
    }
    vex = tmp_path / "all.cdx.json"
    vex.write_text(json.dumps(cdx))
    code, out, err = await _report(
        stack, auth_registries, tmp_path, "pypi", "--vex", str(vex), "--fail-on", "high"
    )
    assert code == 0, err
    assert f"{len(highs)} findings suppressed by VEX" in err
    # A statement for another version does not apply.
    cdx["vulnerabilities"][0]["affects"] = [{"ref": f"pkg:pypi/{highs[0][1]}@0.0.1"}]
    vex.write_text(json.dumps(cdx))
    code, _, _ = await _report(
        stack, auth_registries, tmp_path, "pypi", "--vex", str(vex), "--fail-on", "high"
    )
    assert code == 3


async def test_machine_formats_validate(
    stack: Stack, auth_registries: AuthRegistries, tmp_path: Path
) -> None:
    code, out, _ = await _report(stack, auth_registries, tmp_path, "pypi", "-o", "json")
    assert code == 0
    report = json.loads(out)
    assert len(report["packages"]) == 8
    findings = sum(len(v) for v in report["package_vulnerabilities"].values())
    # Clair's JSON: the schema is the server's own OpenAPI document.
    async with aiohttp.ClientSession() as http, http.get(f"{stack.clair.api}/openapi/v1") as resp:
        openapi = await resp.json(content_type=None)
    validator(openapi, "VulnerabilityReport").validate(report)

    code, out, _ = await _report(stack, auth_registries, tmp_path, "pypi", "-o", "sarif")
    assert code == 0
    sarif = json.loads(out)
    jsonschema.validate(sarif, sarif_schema())
    assert len(sarif["runs"][0]["results"]) == findings
    assert {r["level"] for r in sarif["runs"][0]["results"]} >= {"error", "note"}

    code, out, _ = await _report(stack, auth_registries, tmp_path, "pypi", "-o", "cyclonedx")
    assert code == 0
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(out)
    assert errors is None, errors
    bom = json.loads(out)
    assert bom["specVersion"] == "1.6"
    components = bom["metadata"]["component"]["components"]
    assert len(components) == 8 and all(c["purl"].startswith("pkg:pypi/") for c in components)
    affected = sum(len(v["affects"]) for v in bom["vulnerabilities"])
    assert affected == findings

    code, out, _ = await _report(stack, auth_registries, tmp_path, "pypi", "-o", "xml")
    assert code == 0
    xml = JUnitXml.fromstring(out.encode())
    (suite,) = list(xml)
    assert suite.tests == 8
    failed = [case for case in suite if any(isinstance(r, Failure) for r in case.result)]
    assert len(failed) == sum(1 for v in report["package_vulnerabilities"].values() if v)


async def test_sbom_formats_validate(
    stack: Stack, auth_registries: AuthRegistries, tmp_path: Path
) -> None:
    env = _env(tmp_path, auth_registries)
    prefixes = {
        "alpine": "pkg:apk/alpine/",
        "pypi": "pkg:pypi/",
        "debian": "pkg:deb/debian/",
        "ubuntu": "pkg:deb/ubuntu/",
    }
    for key, expected in prefixes.items():
        ref = await _push(auth_registries, stack, key)
        code, out, err = await stack.clairctl("sbom", "--host", stack.clair.api, ref, env=env)
        assert code == 0, err
        path = tmp_path / f"{key}.spdx.json"
        path.write_text(out)
        document = parse_file(str(path))
        assert validate_full_spdx_document(document) == []
        packages = [p for p in document.packages if p.spdx_id.startswith("SPDXRef-Package")]
        assert packages
        for pkg in packages:
            (ref_,) = pkg.external_references
            assert ref_.reference_type == "purl" and ref_.locator.startswith(expected)

        code, out, err = await stack.clairctl(
            "sbom", "--host", stack.clair.api, "-o", "cyclonedx", ref, env=env
        )
        assert code == 0, err
        assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out) is None
        bom = json.loads(out)
        assert "vulnerabilities" not in bom or not bom["vulnerabilities"]
        assert len(bom["metadata"]["component"]["components"]) == len(packages)


async def test_manifest_and_delete(
    stack: Stack, auth_registries: AuthRegistries, tmp_path: Path
) -> None:
    env = _env(tmp_path, auth_registries)
    ref = await _push(auth_registries, stack, "alpine")
    code, out, err = await stack.clairctl("manifest", ref, env=env)
    assert code == 0, err
    manifest = json.loads(out)
    (layer,) = manifest["layers"]
    assert layer["headers"]["Authorization"][0].startswith("Bearer ")
    code, _, err = await stack.clairctl(*stack.report_args(ref), env=env)
    assert code == 0, err
    code, out, err = await stack.clairctl(
        "delete", "--host", stack.clair.api, manifest["hash"], env=env
    )
    assert code == 0, err
    assert out.split() == [manifest["hash"]]
    code, out, err = await stack.clairctl("delete", "--host", stack.clair.api, "sha256:nope")
    assert code == 1 and "invalid digest" in err


async def test_errors_say_what_to_do(
    stack: Stack, auth_registries: AuthRegistries, tmp_path: Path
) -> None:
    ref = await _push(auth_registries, stack, "alpine")
    code, _, err = await stack.clairctl(
        "report", "--host", "http://127.0.0.1:9", ref, env=_env(tmp_path, auth_registries)
    )
    assert code == 1
    assert "make run" in err
    code, _, err = await stack.clairctl(*stack.report_args(ref), env={**os.environ, "HOME": "/"})
    assert code == 1
    assert "docker login" in err
    missing = ref.replace(":1.0", ":missing")
    code, _, err = await stack.clairctl(
        *stack.report_args(missing), env=_env(tmp_path, auth_registries)
    )
    assert code == 1
    assert "image not found" in err


async def test_archives(stack: Stack, auth_registries: AuthRegistries, tmp_path: Path) -> None:
    """The same image as a `docker save` tarball and as an OCI layout gives the registry's
    packages and findings; its layers are served to the indexer only during the call."""
    code, out, err = await _report(stack, auth_registries, tmp_path, "alpine", "-o", "json")
    assert code == 0, err
    from_registry = json.loads(out)

    def packages(report: dict[str, Any]) -> set[tuple[str, str]]:
        return {(p["name"], p["version"]) for p in report["packages"].values()}

    def findings(report: dict[str, Any]) -> set[tuple[str, str]]:
        return {
            (report["packages"][p]["name"], report["vulnerabilities"][v]["name"])
            for p, vs in report["package_vulnerabilities"].items()
            for v in vs
        }

    saved = tmp_path / "alpine.tar"
    _docker_save(saved, decompress(stack.layers["alpine"]), "e2e/alpine:saved")
    layout = tmp_path / "alpine-oci"
    _oci_layout(layout, stack.layers["alpine"], "e2e/alpine:oci")
    for archive in (saved, layout):
        code, out, err = await stack.clairctl(
            *stack.report_args("-o", "json", "--archive", str(archive))
        )
        assert code == 0, err
        report = json.loads(out)
        assert packages(report) == packages(from_registry)
        assert findings(report) == findings(from_registry)
        assert findings(report)

    code, out, err = await stack.clairctl(*stack.report_args("--archive", str(saved)))
    assert code == 0, err
    assert out.startswith("e2e/alpine:saved (sha256:")
    code, out, err = await stack.clairctl(
        "sbom", "--host", stack.clair.api, "--archive", str(layout)
    )
    assert code == 0, err
    spdx = tmp_path / "oci.spdx.json"
    spdx.write_text(out)
    assert validate_full_spdx_document(parse_file(str(spdx))) == []


def _run_on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Runs clairctl with stdout and stderr on a pseudo-terminal; (exit code, what it showed)."""
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clair_common.cli.clairctl", *args],
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=cwd,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


async def test_terminal_gets_colour_and_progress(
    stack: Stack, auth_registries: AuthRegistries, tmp_path: Path
) -> None:
    import asyncio

    ref = await _push(auth_registries, stack, "pypi")
    code, shown = await asyncio.to_thread(
        _run_on_terminal, stack.report_args(ref), _env(tmp_path, auth_registries), tmp_path
    )
    assert code == 0, shown
    assert "\x1b[31mHigh" in shown  # severity in colour
    assert f"{ref}: resolving" in shown and f"{ref}: matching" in shown  # the progress line


async def test_kev_only_and_min_epss(
    stack: Stack, auth_registries: AuthRegistries, tmp_path: Path, shared_data: Path
) -> None:
    code, out, _ = await _report(stack, auth_registries, tmp_path, "exploited", "-o", "json")
    found = {v["name"] for v in json.loads(out)["vulnerabilities"].values()}
    # The oracle, from the feed documents: advisories aliasing a CVE of the KEV catalog.
    known = {v["cveID"] for v in json.loads(kev_catalog(shared_data))["vulnerabilities"]}
    aliases: dict[str, set[str]] = {}
    for advisory in pypa_advisories(shared_data):
        listed = advisory.get("aliases")
        aliases[str(advisory["id"])] = (
            {str(x) for x in listed} if isinstance(listed, list) else set()
        )
    exploited = {name for name in found if aliases.get(name, set()) & known}
    assert {"PYSEC-2020-102", "PYSEC-2020-103"} <= exploited

    code, out, err = await _report(stack, auth_registries, tmp_path, "exploited", "--kev-only")
    assert code == 0, err
    rows = _rows(out)
    assert {r[4] for r in rows} == exploited
    assert all("KEV" in r for r in rows)
    code, out, err = await _report(
        stack, auth_registries, tmp_path, "exploited", "--min-epss", "0.003"
    )
    assert code == 0, err
    rows = _rows(out)
    assert "PYSEC-2022-257" in {r[4] for r in rows}
    scores = [float(c.removeprefix("epss=")) for r in rows for c in r if c.startswith("epss=")]
    assert len(scores) == len(rows) and min(scores) >= 0.003
    code, _, err = await _report(stack, auth_registries, tmp_path, "pypi", "--min-epss", "2")
    assert code == 1 and "probability from 0 to 1" in err
