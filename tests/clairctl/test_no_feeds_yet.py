"""Before any feed loads (offline `make run`), `report` says why it has nothing to show and how
to load data, instead of printing an empty report; `sbom` needs no feed and works."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import yaml

from tests.clairctl.stack import run_clairctl
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.server import clair_server, wait_ready


async def test_report_before_any_feed(pg_dsn: str, shared_data: Path) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="clairctl-nofeeds-"))
    config = {
        "indexer": {"connstring": pg_dsn, "migrations": True},
        "matcher": {"connstring": pg_dsn, "migrations": True, "disable_updaters": True},
    }
    (workdir / "server.yaml").write_text(yaml.safe_dump(config))
    layout = workdir / "image"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer = build_layer(files_from_dir(shared_data / "layers" / "alpine-3.6.0-docker"))

    def put(data: bytes) -> tuple[str, int]:
        import hashlib

        hexdigest = hashlib.sha256(data).hexdigest()
        (blobs / hexdigest).write_bytes(data)
        return "sha256:" + hexdigest, len(data)

    layer_digest, layer_size = put(layer)
    config_digest, config_size = put(b"{}")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": layer_size,
                }
            ],
        }
    ).encode()
    manifest_digest, manifest_size = put(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": manifest_digest,
                        "size": manifest_size,
                    }
                ],
            }
        )
    )
    with clair_server(workdir, args=("--config", str(workdir / "server.yaml"))) as clair:
        await asyncio.to_thread(wait_ready, clair)
        code, out, err = await run_clairctl(
            "report", "--host", clair.api, "--archive", str(layout), cwd=workdir
        )
        assert code == 1
        assert out == ""
        assert "has not loaded any vulnerability feed yet" in err
        assert "clairctl import-updaters" in err
        code, out, err = await run_clairctl(
            "sbom", "--host", clair.api, "--archive", str(layout), cwd=workdir
        )
        assert code == 0, err
        assert json.loads(out)["spdxVersion"] == "SPDX-2.3"
