"""Benchmark: vulnerability reports of a real Debian 12 image against a million-row feed.

bench/ingest.py's OS-shaped feed (the Debian tracker's JSON, about 1,000,000 rows) fills a
fresh database (embedded PostgreSQL) through the real updater. The image is this machine's own
Two real Debian 12 images, each pushed to a local registry (Debian's docker-registry) and
indexed by two real `clair serve` combo processes on that database:

  minbase    debootstrap's minbase (../shared/data/layers, 88 packages), a base image
  mid        221 of this machine's packages (a seeded sample): the size of the Ubuntu 20.04
             image the performance issue set its goals with (221 packages)
  machine    this machine's own package database (about 800 packages), a fat one

and the processes:

  cached     the default config
  uncached   matcher.report_cache_bytes 0 and matcher.candidate_cache_rows 0: every report is
             matched from the database

Per image, interleaved, --requests times: a GET /matcher/api/v1/vulnerability_report/{digest}
from the uncached process, then from the cached one (full 200s, no conditional headers). Then

  (s) the first report of each of --manifests other images, each holding a random 70% of the
      packages (images of one base share most of them), from the cached process: what a
      registry scanning new images sees
  (b) the baseline: the bare candidate query for the image's source package names

and prints p50 and p99 of each (goals: uncached p50 under 10 ms, cached p50 under 2 ms). The
feed holds both images' source packages (bench/_feeds.py).

Usage: .venv/bin/python bench/match.py [--records 1000000] [--requests 500] [--manifests 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clair_dev.embedded_pg import EmbeddedPostgres  # noqa: E402
from tests.fixtures.images import build_layer  # noqa: E402
from tests.fixtures.registry import LocalRegistry, _ensure_binary, _start, _stop  # noqa: E402
from tests.fixtures.server import clair_server, wait_ready  # noqa: E402

from bench._feeds import installed_sources, write_debian_feed  # noqa: E402
from bench._harness import goal, percentile, summary  # noqa: E402
from bench.ingest import (  # noqa: E402
    INSTALLED_STATUS,
    fresh_database,
    run_updater_subprocess,
    serve_directory,
)

BASELINE_SQL = """
SELECT v.id, v.normalized_severity, v.package_name, v.package_version, v.package_kind,
  v.package_module, v.package_arch, v.repo_name, v.repo_key, v.repo_uri, v.fixed_in_version,
  v.arch_operation
FROM matcher.vuln v
WHERE v.package_name = ANY($1::text[]) AND v.package_kind = 'source'
"""
SHARED = Path(os.environ.get("CLAIR_TEST_DATA", ROOT.parent / "shared" / "data"))
MINBASE = SHARED / "layers" / "debian-12-bookworm-minbase-debootstrap"
MID_PACKAGES = 221
Image = tuple[Path, Path]  # dpkg status, os-release


def images(work: Path) -> dict[str, Image]:
    """The benched images by name; "mid" is written into `work`."""
    machine = (INSTALLED_STATUS, Path("/etc/os-release"))
    mid = work / "mid-status"
    installed = random.Random(221).sample(_stanzas(INSTALLED_STATUS), MID_PACKAGES)
    mid.write_text("\n\n".join(installed) + "\n")
    return {
        "minbase": (MINBASE / "var/lib/dpkg/status", MINBASE / "usr/lib/os-release"),
        "mid": (mid, machine[1]),
        "machine": machine,
    }


def _stanzas(status: Path) -> list[str]:
    """The installed packages' stanzas of a dpkg status."""
    return [s for s in status.read_text().split("\n\n") if "Status: install ok installed" in s]


def image_files(image: Image, share: float = 1.0, seed: int = 0) -> dict[str, bytes]:
    """An image's dpkg status (a random `share` of its packages) and os-release."""
    status, os_release = image
    stanzas = _stanzas(status)
    if share < 1.0:
        stanzas = random.Random(seed).sample(stanzas, int(len(stanzas) * share))
    return {
        "var/lib/dpkg/status": ("\n\n".join(stanzas) + "\n").encode(),
        "etc/os-release": os_release.read_bytes(),
    }


async def index(http: aiohttp.ClientSession, api: str, manifest: dict[str, object]) -> None:
    async with http.post(f"{api}/indexer/api/v1/index_report", json=manifest) as resp:
        body = await resp.json()
        if resp.status != 201 or body["state"] != "IndexFinished":
            raise SystemExit(f"index failed: {resp.status} {body}")


async def timed_report(http: aiohttp.ClientSession, url: str) -> float:
    start = time.perf_counter()
    async with http.get(url) as resp:
        await resp.read()
        if resp.status != 200:
            raise SystemExit(f"report failed: {resp.status}")
    return time.perf_counter() - start


async def latencies(
    uncached_api: str,
    cached_api: str,
    manifest: dict[str, object],
    others: list[dict[str, object]],
    requests: int,
) -> tuple[list[float], list[float], list[float]]:
    """(uncached, cached) GETs of `manifest` interleaved, then the first GET of each other."""
    path = "/matcher/api/v1/vulnerability_report/{}"
    async with aiohttp.ClientSession() as http:
        for api in (uncached_api, cached_api):
            await index(http, api, manifest)
        for doc in others:
            await index(http, cached_api, doc)
        async with http.get(cached_api + path.format(manifest["hash"])) as resp:
            report = await resp.json()  # warm-up and sanity check
            if resp.status != 200:
                raise SystemExit(f"report failed: {resp.status} {report}")
            size = len(await resp.read())
        found = sum(len(v) for v in report["package_vulnerabilities"].values())
        print(
            f"report: {len(report['packages'])} packages, {found} findings,"
            f" {len(report['vulnerabilities'])} vulnerabilities, {size / 1024:.0f} KiB"
        )
        uncached: list[float] = []
        cached: list[float] = []
        for _ in range(requests):
            uncached.append(await timed_report(http, uncached_api + path.format(manifest["hash"])))
            cached.append(await timed_report(http, cached_api + path.format(manifest["hash"])))
        shared = [await timed_report(http, cached_api + path.format(d["hash"])) for d in others]
    return uncached, cached, shared


async def baseline_latencies(dsn: str, names: list[str], requests: int) -> list[float]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(BASELINE_SQL, names)
        print(f"baseline: {len(rows)} candidate rows per query")
        samples = []
        for _ in range(requests):
            start = time.perf_counter()
            await conn.fetch(BASELINE_SQL, names)
            samples.append(time.perf_counter() - start)
    finally:
        await conn.close()
    return samples


def _ms(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 50) * 1000, percentile(samples, 99) * 1000


def _print(
    image: str, samples: tuple[list[float], list[float], list[float]], bare: list[float]
) -> None:
    (u50, u99), (c50, c99), (s50, s99), (b50, b99) = (_ms(x) for x in (*samples, bare))
    print(f"uncached report:                        p50 {u50:.1f} ms, p99 {u99:.1f} ms")
    print(f"cached report:                          p50 {c50:.1f} ms, p99 {c99:.1f} ms")
    print(f"(s) first report of images sharing 70%: p50 {s50:.1f} ms, p99 {s99:.1f} ms")
    print(f"(b) bare candidate query:               p50 {b50:.1f} ms, p99 {b99:.1f} ms")
    print(f"p50 ratios to (b): uncached {u50 / b50:.2f}, (s) {s50 / b50:.2f}")
    goal(f"{image}: uncached report p50", u50, 10, unit=" ms")
    goal(f"{image}: cached report p50", c50, 2, unit=" ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--manifests", type=int, default=100, help="other images: (s)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-match-"))
    work.chmod(0o755)  # the embedded PostgreSQL runs as an unprivileged user when we are root
    (work / "registry").mkdir()
    pg = EmbeddedPostgres(work / "pg", fast=True)
    pg.start()
    proc, base_url = _start(_ensure_binary(), work / "registry")
    registry = LocalRegistry(base_url, work / "registry" / "storage")
    try:
        sources = installed_sources(INSTALLED_STATUS)
        benched = images(work)
        for name, version in installed_sources(benched["minbase"][0]).items():
            sources.setdefault(name, version)
        rows = write_debian_feed(work / "feed", args.records, sources)
        dsn = fresh_database(pg, "match")
        with serve_directory(work / "feed") as url:
            ingested = run_updater_subprocess(dsn, url, "debian")
        print(f"database: {ingested['rows']:,} vuln rows ({rows:,} generated)")
        env = {
            "CLAIR_INDEXER__CONNSTRING": dsn,
            "CLAIR_INDEXER__MIGRATIONS": "true",
            "CLAIR_MATCHER__CONNSTRING": dsn,
            "CLAIR_MATCHER__MIGRATIONS": "true",
            "CLAIR_MATCHER__DISABLE_UPDATERS": "true",
            "CLAIR_LOG_LEVEL": "warn",
        }
        uncached_env = {
            **env,
            "CLAIR_MATCHER__REPORT_CACHE_BYTES": "0",
            "CLAIR_MATCHER__CANDIDATE_CACHE_ROWS": "0",
        }
        with (
            clair_server(work, mode="combo", env=uncached_env, name="uncached") as uncached,
            clair_server(work, mode="combo", env=env, name="cached") as cached,
        ):
            wait_ready(uncached)
            wait_ready(cached)
            for image, files in benched.items():
                print(f"== image {image}")
                manifest = registry.push_image_sync(image, [build_layer(image_files(files))])
                others = [
                    registry.push_image_sync(image, [build_layer(image_files(files, 0.7, k))])
                    for k in range(args.manifests)
                ]
                try:
                    samples = asyncio.run(
                        latencies(
                            uncached.api,
                            cached.api,
                            manifest.to_json(),
                            [doc.to_json() for doc in others],
                            args.requests,
                        )
                    )
                except Exception:
                    print(uncached.log_text()[-2000:], cached.log_text()[-2000:], file=sys.stderr)
                    raise
                names = sorted(installed_sources(files[0]))
                bare = asyncio.run(baseline_latencies(dsn, names, args.requests))
                _print(image, samples, bare)
    finally:
        _stop(proc)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
