"""Benchmark: indexing one big layer through the real server, against bare decompress-and-walk.

A synthetic layer (the generator of bench/layer_walk.py, default 320 MiB uncompressed, gzip)
is pushed to a local registry (Debian's docker-registry). For each size, a fresh
`clair serve --mode indexer` process on a fresh database indexes a one-layer manifest; we time

  (a) the POST of the manifest: fetch over HTTP, digest check, scan, DB writes, report
  (b) the baseline: decompress the same blob from disk with the same library (isal) and walk
      its tar headers with tarfile

and print (a)/(b) (goal: at most 1.25) and the server's peak RSS (goal: independent of the
layer's size). Then a realistic image (Ubuntu 20.04, 221 packages) is indexed and wrk fires
re-POSTs of its manifest with 16 connections for the rate (goal: 2,000/s).

Usage: .venv/bin/python bench/index_layer.py [--size-mb 320] [--small-mb 80] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.images import layer_from_dir  # noqa: E402
from tests.fixtures.registry import LocalRegistry, _ensure_binary, _start, _stop  # noqa: E402
from tests.fixtures.server import clair_server, wait_ready  # noqa: E402

from bench.layer_walk import build_layer, compress  # noqa: E402
from clair_common.embedded_pg import (  # noqa: E402
    EmbeddedPostgres,
    dsn_with_database,
    ensure_database_sync,
)


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _baseline(blob: Path, repeat: int) -> float:
    walk = ROOT / "bench" / "layer_walk.py"
    cmd = [sys.executable, str(walk), "--run-case", "baseline", "--blob", str(blob)]
    out = subprocess.run(
        [*cmd, "--repeat", str(repeat)], check=True, capture_output=True, text=True
    )
    seconds: float = json.loads(out.stdout)["seconds"]
    return seconds


async def _post(api: str, manifest: dict[str, object]) -> float:
    async with aiohttp.ClientSession() as http:
        start = time.perf_counter()
        async with http.post(f"{api}/indexer/api/v1/index_report", json=manifest) as resp:
            body = await resp.json()
            if resp.status != 201 or body["state"] != "IndexFinished":
                raise SystemExit(f"index failed: {resp.status} {body}")
        return time.perf_counter() - start


def _reposts(api: str, manifest: dict[str, object], seconds: int, connections: int) -> float:
    """Re-POST rate measured with wrk (C, so the load generator is not the bottleneck)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed for the re-POST rate (Debian package wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "manifest.json"
        body.write_text(json.dumps(manifest))
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f'local f = io.open("{body}", "r")\n'
            'wrk.body = f:read("*a")\nf:close()\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            'wrk.headers["Accept-Encoding"] = "gzip"\n'
        )
        out = subprocess.run(
            [
                wrk,
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "-s",
                str(script),
                f"{api}/indexer/api/v1/index_report",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"re-POSTs failed:\n{out}")
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"unexpected wrk output:\n{out}")


def _index_once(
    workdir: Path, pg: EmbeddedPostgres, registry: LocalRegistry, blob: Path, name: str
) -> tuple[float, float, str, dict[str, object]]:
    manifest = registry.push_image_sync(name, [blob.read_bytes()]).to_json()
    ensure_database_sync(pg.dsn, name)
    env = {
        "CLAIR_INDEXER__CONNSTRING": dsn_with_database(pg.dsn, name),
        "CLAIR_INDEXER__MIGRATIONS": "true",
        "CLAIR_LOG_LEVEL": "warn",
    }
    with clair_server(workdir, mode="indexer", env=env, name=name) as server:
        wait_ready(server)
        try:
            seconds = asyncio.run(_post(server.api, manifest))
        except Exception:
            print(server.log_text()[-3000:], file=sys.stderr)
            raise
        rss = _peak_rss_mib(server.proc.pid)
        return seconds, rss, server.api, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=320)
    parser.add_argument("--small-mb", type=int, default=80)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10, help="duration of the re-POST load")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    work.chmod(0o755)  # the embedded PostgreSQL runs as an unprivileged user when we are root
    (work / "registry").mkdir()
    pg = EmbeddedPostgres(work / "pg", fast=True)
    pg.start()
    proc, base_url = _start(_ensure_binary(), work / "registry")
    registry = LocalRegistry(base_url, work / "registry" / "storage")
    try:
        print(
            f"{'layer':<10}{'blob MiB':>9}{'(a) POST s':>12}{'(b) base s':>12}{'a/b':>7}"
            f"{'RSS MiB':>9}"
        )
        last: tuple[str, dict[str, object]] | None = None
        for label, size in (("small", args.small_mb), ("large", args.size_mb)):
            layer_dir = work / label
            layer_dir.mkdir()
            plain = layer_dir / "layer.tar"
            build_layer(plain, size << 20, seed=size)
            blob = compress(plain, layer_dir)["gzip"]
            plain.unlink()
            (layer_dir / "layer.tar.zst").unlink()
            baseline = _baseline(blob, args.repeat)
            best, peak = float("inf"), 0.0
            for r in range(args.repeat):
                seconds, rss, _, manifest = _index_once(work, pg, registry, blob, f"{label}{r}")
                best, peak = min(best, seconds), max(peak, rss)
            print(
                f"{label:<10}{blob.stat().st_size / 2**20:>9.0f}{best:>12.3f}{baseline:>12.3f}"
                f"{best / baseline:>7.2f}{peak:>9.0f}"
            )
            last = (label, manifest)
        assert last is not None
        # A realistic report for the re-POST rate: the Ubuntu 20.04 base image (221 packages).
        data = Path(os.environ.get("CLAIR_TEST_DATA", ROOT.parent / "shared" / "data"))
        (ubuntu,) = (data / "layers").glob("ubuntu-20.04-*")
        realistic = layer_from_dir(ubuntu)
        name = "reposts"
        manifest = registry.push_image_sync(name, [realistic]).to_json()
        ensure_database_sync(pg.dsn, name)
        env = {
            "CLAIR_INDEXER__CONNSTRING": dsn_with_database(pg.dsn, name),
            "CLAIR_INDEXER__MIGRATIONS": "true",
            "CLAIR_INDEXER__INDEX_REPORT_REQUEST_CONCURRENCY": "-1",
            "CLAIR_LOG_LEVEL": "warn",
        }
        with clair_server(work, mode="indexer", env=env, name=name) as server:
            wait_ready(server)
            asyncio.run(_post(server.api, manifest))
            rate = _reposts(server.api, manifest, args.seconds, args.concurrency)
        print(f"re-POSTs of an indexed manifest (221 packages): {rate:,.0f}/s (goal 2,000/s)")
    finally:
        _stop(proc)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
