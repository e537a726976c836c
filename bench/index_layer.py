"""Benchmark: indexing one big layer through the real server, against a lean decompress-and-walk.

A realistic layer (a tar of this machine's `/usr`, bench/_layers.py; default 300 MiB of file
data) in each compression (gzip, zstd, none) is pushed to a local registry (Debian's
docker-registry). Interleaved, per round and compression:

  (b) the baseline: the lean decompress-and-walk of the same blob from disk (same decompressor,
      bare tar header loop), in its own process
  (c) cold: a fresh `clair serve --mode indexer` on a fresh database POSTs a one-layer manifest:
      fetch over HTTP, digest check, cache write, scan, DB writes, report
  (w) warm: the same process then indexes another blob of the same content (a trailing empty
      gzip member / zstd frame / zero blocks make a new digest), its imports and pools warm

  (f) the floor: the same blob downloaded from the same registry and hashed, nothing else (a
      verified download, which no indexer can skip; ``curl | sha256sum`` in one process)
  (p) piped: that verified download fed through a pipe to the lean walk in another process,
      the two overlapping on the machine's cores (``curl | tee >(sha256sum) | lean``): the
      fastest both unavoidable parts can be done together, with no tar validation, no
      scanners and no database

and prints medians, (c)/(b) and (w)/(b) (goal: at most 1.25), (w)/max(b, f) (how far indexing
is from the slower of its two unavoidable parts), (p)/(b) (how close to the lean walk any
indexer gets here) and the server's peak RSS. Then a
realistic image (Ubuntu 20.04, 221 packages) is indexed and wrk fires re-POSTs of its manifest
with 64 connections under the default limits (goal: 2,000/s).

Usage: .venv/bin/python bench/index_layer.py [--size-mb 300] [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp
import zstandard
from isal import igzip

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clair_dev.embedded_pg import (  # noqa: E402
    EmbeddedPostgres,
    dsn_with_database,
    ensure_database_sync,
)
from tests.fixtures.images import layer_from_dir  # noqa: E402
from tests.fixtures.registry import LocalRegistry, _ensure_binary, _start, _stop  # noqa: E402
from tests.fixtures.server import ClairProcess, clair_server, wait_ready  # noqa: E402

from bench._harness import goal, interleaved, median, peak_rss_mib, summary  # noqa: E402
from bench._layers import build_system_layer, compress_all  # noqa: E402
from bench.layer_walk import measure  # noqa: E402

GOAL_RATIO = 1.25
GOAL_REPOSTS = 2000.0


def variant(blob: bytes, compression: str, k: int) -> bytes:
    """The same uncompressed tar (plus `k` KiB of zeros past its end, k > 0) under a new digest."""
    tail = b"\0" * (1024 * k)
    if compression == "gzip":
        return blob + igzip.compress(tail)  # a second gzip member
    if compression == "zstd":
        return blob + zstandard.ZstdCompressor().compress(tail)  # a second frame
    return blob + tail


async def _verified_download(url: str, into: int | None = None) -> tuple[float, float]:
    """(start, seconds) of downloading and hashing `url`, writing it `into` a pipe if given."""
    async with aiohttp.ClientSession() as http:
        start = time.perf_counter()
        hasher = hashlib.sha256()
        async with http.get(url) as resp:
            async for chunk in resp.content.iter_any():
                hasher.update(chunk)
                if into is not None:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(into, view) :]
        hasher.hexdigest()
        return start, time.perf_counter() - start


def _piped(url: str) -> float:
    walk = [sys.executable, str(ROOT / "bench" / "layer_walk.py"), "--run-case", "lean"]
    child = subprocess.Popen([*walk, "--blob", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdout.readline()  # "ready": imports done, reading its standard input
        # Linux's default 64 KiB pipe would lock-step the two processes.
        fcntl.fcntl(child.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        start, _ = asyncio.run(_verified_download(url, child.stdin.fileno()))
        child.stdin.close()
        if child.wait() != 0:
            raise SystemExit("the piped lean walk failed")
        return time.perf_counter() - start
    finally:
        child.kill()
        child.wait()


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
        url = f"{api}/indexer/api/v1/index_report"
        command = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    requests = refused = 0
    duration = float(seconds)
    for line in out.splitlines():
        words = line.split()
        if " requests in " in line:  # "10456 requests in 3.05s, 96.56MB read"
            requests, duration = int(words[0]), float(words[3].rstrip("s,"))
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            refused = int(words[-1])
    if not requests:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    # Past index_report_request_concurrency the server answers 429: count only the answers.
    print(f"  {requests} requests, {refused} not 2xx (429 past the request limit)")
    return (requests - refused) / duration


class Bench:
    def __init__(self, work: Path, pg: EmbeddedPostgres, registry: LocalRegistry) -> None:
        self.work, self.pg, self.registry = work, pg, registry
        self.runs = 0

    @contextmanager
    def indexer(self, env: dict[str, str] | None = None) -> Iterator[ClairProcess]:
        """A fresh indexer process on a fresh database (and so an empty layer cache)."""
        self.runs += 1
        name = f"run{self.runs}"
        ensure_database_sync(self.pg.dsn, name)
        full_env = {
            "CLAIR_INDEXER__CONNSTRING": dsn_with_database(self.pg.dsn, name),
            "CLAIR_INDEXER__MIGRATIONS": "true",
            "CLAIR_LOG_LEVEL": "warn",
            **(env or {}),
        }
        with clair_server(self.work, mode="indexer", env=full_env, name=name) as server:
            wait_ready(server)
            yield server

    def cold_and_warm(self, blob: bytes, compression: str, rss: list[float]) -> tuple[float, float]:
        # Tails of 2n+1 and 2n+2 KiB: every round's two blobs differ from each other and from
        # every other round's (a tail of 0 and one of -1 KiB were both empty: in the first
        # round the "warm" POST was a re-POST of the cold manifest).
        cold = self.registry.push_image_sync(
            "cold", [variant(blob, compression, 2 * self.runs + 1)]
        )
        warm = self.registry.push_image_sync(
            "warm", [variant(blob, compression, 2 * self.runs + 2)]
        )
        with self.indexer() as server:
            try:
                seconds_cold = asyncio.run(_post(server.api, cold.to_json()))
                seconds_warm = asyncio.run(_post(server.api, warm.to_json()))
            except BaseException:
                print(server.log_text()[-3000:], file=sys.stderr)
                raise
            rss.append(peak_rss_mib(server.proc.pid))
        return seconds_cold, seconds_warm


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300, help="file data in the layer")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--seconds", type=int, default=10, help="duration of the re-POST load")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    work.chmod(0o755)  # the embedded PostgreSQL runs as an unprivileged user when we are root
    (work / "registry").mkdir()
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        pg = EmbeddedPostgres(work / "pg", fast=True)
        pg.start()
        cleanup.callback(pg.stop)
        proc, base_url = _start(_ensure_binary(), work / "registry")
        cleanup.callback(_stop, proc)
        bench = Bench(work, pg, LocalRegistry(base_url, work / "registry" / "storage"))

        plain = work / "layer.tar"
        members, data = build_system_layer(plain, args.size_mb << 20)
        blobs = compress_all(plain, work)
        print(f"layer: tar of /usr, {members} members, {data / 2**20:.0f} MiB of file data")
        print(
            f"{'layer':<8}{'blob MiB':>9}{'(b) lean s':>11}{'(f) floor s':>12}{'(p) piped s':>12}"
            f"{'(c) cold s':>11}{'(w) warm s':>11}{'c/b':>6}{'w/b':>6}{'w/max(b,f)':>11}"
            f"{'p/b':>6}{'RSS MiB':>9}"
        )
        ratios: dict[str, tuple[float, float]] = {}
        for compression, path in blobs.items():
            blob = path.read_bytes()
            rss: list[float] = []
            warm: list[float] = []

            def index(
                blob: bytes = blob,
                c: str = compression,
                rss: list[float] = rss,
                warm: list[float] = warm,
            ) -> float:
                cold_s, warm_s = bench.cold_and_warm(blob, c, rss)
                warm.append(warm_s)
                return cold_s

            def lean(path: Path = path) -> float:
                return measure("lean", path)["seconds"]

            floor_digest = bench.registry.push_blob_sync("floor", blob)
            floor_url = bench.registry.blob_url("floor", floor_digest)

            def floor(url: str = floor_url) -> float:
                return asyncio.run(_verified_download(url))[1]

            def piped(url: str = floor_url) -> float:
                return _piped(url)

            samples = interleaved(
                {"lean": lean, "floor": floor, "piped": piped, "cold": index}, args.rounds
            )
            base, cold, warm_m = median(samples["lean"]), median(samples["cold"]), median(warm)
            least, pipe = median(samples["floor"]), median(samples["piped"])
            ratios[compression] = (cold / base, warm_m / base)
            print(
                f"{compression:<8}{len(blob) / 2**20:>9.0f}{base:>11.3f}{least:>12.3f}"
                f"{pipe:>12.3f}{cold:>11.3f}{warm_m:>11.3f}{cold / base:>6.2f}"
                f"{warm_m / base:>6.2f}{warm_m / max(base, least):>11.2f}{pipe / base:>6.2f}"
                f"{max(rss):>9.0f}"
            )
            del blob
        for compression, (cold_ratio, warm_ratio) in ratios.items():
            goal(f"index / lean walk, {compression}, cold", cold_ratio, GOAL_RATIO)
            goal(f"index / lean walk, {compression}, warm", warm_ratio, GOAL_RATIO)

        # A realistic report for the re-POST rate: the Ubuntu 20.04 base image (221 packages).
        shared = Path(os.environ.get("CLAIR_TEST_DATA", ROOT.parent / "shared" / "data"))
        (ubuntu,) = (shared / "layers").glob("ubuntu-20.04-*")
        manifest = bench.registry.push_image_sync("reposts", [layer_from_dir(ubuntu)]).to_json()
        with bench.indexer() as server:
            asyncio.run(_post(server.api, manifest))
            rate = _reposts(server.api, manifest, args.seconds, args.connections)
        print(f"re-POSTs of an indexed manifest (221 packages), {args.connections} connections,")
        goal("  default limits, per second", rate, GOAL_REPOSTS, at_most=False)
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
