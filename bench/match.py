"""Benchmark: vulnerability reports against a million-row matcher database.

The feed and ingest of bench/ingest.py fill a fresh database (embedded PostgreSQL) with about
1,000,000 PyPI vulnerability records through the real updater. Images holding 400 Python
distributions whose names occur in the feed are pushed to a local registry (Debian's
docker-registry) and indexed by a real `clair serve` combo process on that database. Then

  (a) 1,000 sequential GET /matcher/api/v1/vulnerability_report/{digest} of one manifest (no
      conditional headers: every one is a full 200 report), what a client polling a report
      sees; after the first, the matcher answers these from its report cache (keyed by ETag)
  (u) the uncached path: the first GET of each of --manifests other manifests (same 400
      names, other versions), every one matched; their candidates (same keys) come from the
      matcher's candidate cache after the first
  (n) the same on a fresh process with the candidate cache off (matcher.candidate_cache_rows
      0): every report queries the database for all its keys
  (b) the baseline: the bare candidate query for the same 400 package names (every row of
      those names, no rules), 1,000 times on one connection

and prints p50 and p99 of each (goal: p50 under 20 ms).

Usage: .venv/bin/python bench/match.py [--records 1000000] [--requests 1000] [--manifests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.images import build_layer  # noqa: E402
from tests.fixtures.registry import LocalRegistry, _ensure_binary, _start, _stop  # noqa: E402
from tests.fixtures.server import clair_server, wait_ready  # noqa: E402

from bench.ingest import (  # noqa: E402
    fresh_database,
    generate_feed,
    package_name,
    run_updater_subprocess,
    serve_directory,
)
from clair_common.embedded_pg import EmbeddedPostgres  # noqa: E402

MANIFEST_PACKAGES = 400
BASELINE_SQL = """
SELECT v.id, v.normalized_severity, v.package_name, v.package_version, v.package_kind,
  v.package_module, v.package_arch, v.repo_name, v.repo_key, v.repo_uri, v.fixed_in_version,
  v.arch_operation
FROM matcher.vuln v
WHERE v.package_name = ANY($1::text[]) AND v.package_kind = 'binary'
"""


def image_files(names: list[str], variant: int = 0) -> dict[str, bytes]:
    """A site-packages tree: one wheel's .dist-info per name; versions 1.6.x, so that about
    one record in twelve (fixed in a later 1.6.y) affects them. Each `variant` shifts the
    versions: another manifest, with about as many findings."""
    files: dict[str, bytes] = {}
    site = "usr/lib/python3.11/site-packages"
    for i, name in enumerate(names):
        version = f"1.6.{(i + variant) % 13}"
        if variant >= 13:
            version += f".post{variant // 13}"
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n"
        files[f"{site}/{name}-{version}.dist-info/METADATA"] = metadata.encode()
    return files


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


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


async def report_latencies(
    api: str, manifest: dict[str, object], others: list[dict[str, object]], requests: int
) -> tuple[list[float], list[float]]:
    """(repeated GETs of `manifest`, the first GET of each of `others`)."""
    url = f"{api}/matcher/api/v1/vulnerability_report/{{}}"
    async with aiohttp.ClientSession() as http:
        for doc in (manifest, *others):
            await index(http, api, doc)
        async with http.get(url.format(manifest["hash"])) as resp:  # warm-up, sanity check
            report = await resp.json()
            if resp.status != 200:
                raise SystemExit(f"report failed: {resp.status} {report}")
        found = sum(len(v) for v in report["package_vulnerabilities"].values())
        print(
            f"report: {len(report['packages'])} packages, {found} findings,"
            f" {len(report['vulnerabilities'])} vulnerabilities"
        )
        first = [await timed_report(http, url.format(doc["hash"])) for doc in others]
        repeated = [await timed_report(http, url.format(manifest["hash"])) for _ in range(requests)]
    return repeated, first


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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument(
        "--packages",
        type=int,
        default=200_000,
        help="distinct names in the feed (default: 5 records a name, as in the real PyPI feed)",
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "--manifests", type=int, default=200, help="other manifests, each requested once: (u)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-match-"))
    work.chmod(0o755)  # the embedded PostgreSQL runs as an unprivileged user when we are root
    (work / "registry").mkdir()
    pg = EmbeddedPostgres(work / "pg", fast=True)
    pg.start()
    proc, base_url = _start(_ensure_binary(), work / "registry")
    registry = LocalRegistry(base_url, work / "registry" / "storage")
    try:
        records = generate_feed(work / "feed", args.records, args.packages)
        dsn = fresh_database(pg, "match")
        with serve_directory(work / "feed") as url:
            ingested = run_updater_subprocess(dsn, url)
        print(f"database: {ingested['rows']:,} vuln rows from {records:,} records")
        step = max(1, args.packages // MANIFEST_PACKAGES)
        names = [package_name(i * step) for i in range(MANIFEST_PACKAGES)]
        manifest, *others = [
            registry.push_image_sync("match", [build_layer(image_files(names, k))]).to_json()
            for k in range(1 + args.manifests)
        ]
        env = {
            "CLAIR_INDEXER__CONNSTRING": dsn,
            "CLAIR_INDEXER__MIGRATIONS": "true",
            "CLAIR_MATCHER__CONNSTRING": dsn,
            "CLAIR_MATCHER__MIGRATIONS": "true",
            "CLAIR_MATCHER__DISABLE_UPDATERS": "true",
            "CLAIR_LOG_LEVEL": "warn",
        }
        with clair_server(work, mode="combo", env=env, name="match") as server:
            wait_ready(server)
            try:
                served, first = asyncio.run(
                    report_latencies(server.api, manifest, others, args.requests)
                )
            except Exception:
                print(server.log_text()[-3000:], file=sys.stderr)
                raise
        # Again on a fresh process (empty caches) without the candidate cache: every report
        # queries the database for all its keys.
        env["CLAIR_MATCHER__CANDIDATE_CACHE_ROWS"] = "0"
        with clair_server(work, mode="combo", env=env, name="match-nocache") as server:
            wait_ready(server)
            _, alone = asyncio.run(report_latencies(server.api, manifest, others, 0))
        bare = asyncio.run(baseline_latencies(dsn, names, args.requests))
        a50, a99 = percentiles(served)
        u50, u99 = percentiles(first)
        n50, n99 = percentiles(alone)
        b50, b99 = percentiles(bare)
        print(f"(a) vulnerability reports, repeated:    p50 {a50:.1f} ms, p99 {a99:.1f} ms")
        print(f"(u) first report of each manifest:      p50 {u50:.1f} ms, p99 {u99:.1f} ms")
        print(f"(n) the same, no candidate cache:       p50 {n50:.1f} ms, p99 {n99:.1f} ms")
        print(f"(b) bare candidate query:               p50 {b50:.1f} ms, p99 {b99:.1f} ms")
        print(
            f"p50 ratios: (a)/(b) {a50 / b50:.2f}, (u)/(b) {u50 / b50:.2f}, (n)/(b) {n50 / b50:.2f}"
        )
        print("goal: p50 < 20 ms")
    finally:
        _stop(proc)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
