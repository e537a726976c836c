"""Benchmark: one updater run of a million-row feed, against a bare COPY of its rows.

An OS-shaped feed (bench/_feeds.py: the Debian Security Tracker's JSON with this machine's
installed source packages and synthetic ones, and a mirror to discover the releases from) of
about 1,000,000 rows is generated in a temporary directory and served by a local HTTP server;
`--feed osv` generates an OSV PyPI feed (`ecosystems.txt`, `PyPI/all.zip`) instead. Then,
interleaved for `--rounds`, on fresh databases of one embedded PostgreSQL:

  (a) a subprocess runs the updater set once through `UpdateScheduler.run_once()`: fetch,
      parse, hash, dedupe, COPY, links, latest-operation bookkeeping, GC, VACUUM
  (b) the same final `vuln` rows (dumped from the first (a)'s database) are COPYed, binary,
      into the same indexed table of an empty database

and prints the medians, (a)/(b) (goal: at most 2) and the peak RSS (VmHWM) of (a)'s process
(goal: under 500 MB). `bench/match.py` reuses the feeds and the ingest of this module.

Usage: .venv/bin/python bench/ingest.py [--feed debian|osv] [--records 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.server
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clair_dev.embedded_pg import (  # noqa: E402
    EmbeddedPostgres,
    dsn_with_database,
    ensure_database_sync,
)

from bench._feeds import debian_updater_config, installed_sources, write_debian_feed  # noqa: E402
from bench._harness import goal, interleaved, median, peak_rss_mib, summary  # noqa: E402

RANGES_PER_ADVISORY = 4
INSTALLED_STATUS = Path("/var/lib/dpkg/status")  # what bench/_layers.py puts in its layer
_CVSS = (
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N",
    "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H",
)


def package_name(n: int) -> str:
    return f"benchpkg-{n:05d}"


def fixed_version(advisory: int) -> str:
    """Spread fixed versions so that some installed versions (1.x.y) are affected."""
    return f"1.{advisory % 7}.{advisory % 13}"


def _advisory(i: int, packages: int, rng: random.Random) -> dict[str, Any]:
    affected = []
    for k in range(RANGES_PER_ADVISORY):
        fixed = fixed_version(i + k)
        affected.append(
            {
                "package": {"ecosystem": "PyPI", "name": package_name(rng.randrange(packages))},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
                "versions": [f"0.{m}.0" for m in range(8)],
            }
        )
    doc: dict[str, Any] = {
        "id": f"PYSEC-2099-{i}",
        "modified": "2024-03-01T00:00:00Z",
        "published": "2023-06-15T12:00:00Z",
        "aliases": [f"CVE-2099-{i}"],
        "summary": f"Synthetic advisory {i}: improper input validation in a parser",
        "details": "A crafted document makes the parser read out of bounds. " * 3,
        "affected": affected,
        "references": [
            {"type": "ADVISORY", "url": f"https://example.org/advisories/{i}"},
            {"type": "FIX", "url": f"https://example.org/commits/{i:x}"},
        ],
    }
    if i % 4 == 0:
        doc["severity"] = [{"type": "CVSS_V3", "score": _CVSS[i % len(_CVSS)]}]
    return doc


def generate_feed(directory: Path, records: int, packages: int, seed: int = 1) -> int:
    """Writes `ecosystems.txt` and `PyPI/all.zip`; returns the number of records."""
    rng = random.Random(seed)
    advisories = -(-records // RANGES_PER_ADVISORY)
    (directory / "PyPI").mkdir(parents=True, exist_ok=True)
    (directory / "ecosystems.txt").write_text("PyPI\n")
    with zipfile.ZipFile(
        directory / "PyPI" / "all.zip", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
    ) as zf:
        for i in range(advisories):
            zf.writestr(f"PYSEC-2099-{i}.json", orjson.dumps(_advisory(i, packages, rng)))
    return advisories * RANGES_PER_ADVISORY


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """A local HTTP server (Last-Modified, If-Modified-Since) for the feed files."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def backend_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of PostgreSQL backends (the server runs on this machine)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def _updater_run(dsn: str, feed: str, url: str) -> dict[str, Any]:
    from clair_common.db.locks import AdvisoryLocks
    from clair_common.db.migrate import migrate
    from clair_common.db.pool import create_pool
    from clair_matcher.scheduler import UpdateScheduler
    from clair_matcher.store import MatcherStore

    await migrate(dsn, "matcher", "clair_matcher")
    pool = await create_pool(dsn, schema="matcher", application_name="bench")
    locks = AdvisoryLocks(dsn)
    scheduler = UpdateScheduler(
        MatcherStore(pool),
        locks,
        sets=[feed],
        config=updater_config(feed, url),
        period=timedelta(hours=6),
        retention=10,
    )
    backends = "SELECT array_agg(pid) FROM pg_stat_activity WHERE application_name = 'bench'"
    try:
        pids = await pool.fetchval(backends)
        db_cpu, cpu = backend_cpu_seconds(pids), time.process_time()
        start = time.perf_counter()
        report = await scheduler.run_once()
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        # Connections the pool opened during the run are new backends; count them too.
        db_cpu = backend_cpu_seconds(await pool.fetchval(backends)) - db_cpu
        rows = await pool.fetchval("SELECT count(*) FROM vuln")
    finally:
        await scheduler.close()
        await locks.close()
        await pool.close()
    if report.errors:
        raise SystemExit(f"updater run failed: {report.errors}")
    return {
        "seconds": seconds,
        "python_cpu": cpu,
        "db_cpu": db_cpu,
        "rows": rows,
        "outcomes": report.outcomes,
    }


def updater_config(feed: str, url: str) -> dict[str, Any]:
    if feed == "debian":
        return debian_updater_config(url)
    return {"osv": {"url": url}}


def generate(feed: str, directory: Path, records: int, packages: int) -> int:
    """Write the feed named `feed` under `directory`; returns the rows it will store."""
    if feed == "debian":
        return write_debian_feed(directory, records, installed_sources(INSTALLED_STATUS))
    return generate_feed(directory, records, packages)


def run_updater_subprocess(dsn: str, url: str, feed: str = "osv") -> dict[str, Any]:
    """(a) in its own process, so that its peak RSS is the ingest's alone."""
    cmd = [sys.executable, str(Path(__file__)), "--run-case", "updater", "--dsn", dsn]
    cmd += ["--feed", feed, "--url", url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _columns() -> list[str]:
    from clair_matcher.store._rows import STAGE_COLUMNS

    return ["updater", *STAGE_COLUMNS]


async def dump_rows(source_dsn: str, dump: Path) -> None:
    """The final vuln rows of `source_dsn`, in binary COPY format."""
    import asyncpg

    src = await asyncpg.connect(source_dsn)
    try:
        await src.copy_from_query(
            f"SELECT {', '.join(_columns())} FROM matcher.vuln ORDER BY id",
            output=str(dump),
            format="binary",
        )
    finally:
        await src.close()


async def bare_copy(target_dsn: str, dump: Path) -> tuple[float, float]:
    """(b): `dump` COPYed into an empty, indexed `vuln`; returns (seconds, backend CPU)."""
    import asyncpg

    from clair_common.db.migrate import migrate

    columns = _columns()
    await migrate(target_dsn, "matcher", "clair_matcher")
    dst = await asyncpg.connect(target_dsn)
    try:
        db_cpu = backend_cpu_seconds([dst.get_server_pid()])
        start = time.perf_counter()
        await dst.copy_to_table(
            "vuln", schema_name="matcher", source=str(dump), columns=columns, format="binary"
        )
        seconds = time.perf_counter() - start
        return seconds, backend_cpu_seconds([dst.get_server_pid()]) - db_cpu
    finally:
        await dst.close()


def fresh_database(pg: EmbeddedPostgres, name: str) -> str:
    ensure_database_sync(pg.dsn, name)
    return dsn_with_database(pg.dsn, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--feed", choices=("debian", "osv"), default="debian")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--packages", type=int, default=200_000, help="osv: distinct names")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--run-case", choices=["updater"], help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_case == "updater":
        logging.basicConfig(level=logging.WARNING)
        result = asyncio.run(_updater_run(args.dsn, args.feed, args.url))
        result["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return 0

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    work.chmod(0o755)  # the embedded PostgreSQL runs as an unprivileged user when we are root
    pg = EmbeddedPostgres(work / "pg", fast=True)
    pg.start()
    try:
        started = time.perf_counter()
        records = generate(args.feed, work / "feed", args.records, args.packages)
        size = sum(f.stat().st_size for f in (work / "feed").rglob("*") if f.is_file()) / 2**20
        print(
            f"feed: {args.feed}, {records:,} rows, {size:.0f} MiB"
            f" (generated in {time.perf_counter() - started:.0f} s)"
        )
        dump = work / "rows.copy"
        runs: list[dict[str, Any]] = []
        cpu: list[float] = []
        with serve_directory(work / "feed") as url:

            def updater() -> float:
                dsn = fresh_database(pg, f"updater{len(runs)}")
                runs.append(run_updater_subprocess(dsn, url, args.feed))
                if not dump.exists():
                    asyncio.run(dump_rows(dsn, dump))
                return float(runs[-1]["seconds"])

            def baseline() -> float:
                seconds, backend = asyncio.run(
                    bare_copy(fresh_database(pg, f"copy{len(cpu)}"), dump)
                )
                cpu.append(backend)
                return seconds

            samples = interleaved({"updater": updater, "copy": baseline}, args.rounds)
        a, b = median(samples["updater"]), median(samples["copy"])
        first = runs[0]
        print(f"rows in vuln:           {first['rows']:,}")
        print(
            f"(a) updater run:        median {a:.2f} s of {len(runs)}"
            f" (CPU of the first: Python {first['python_cpu']:.2f} s,"
            f" PostgreSQL {first['db_cpu']:.2f} s)"
        )
        print(f"(b) bare COPY:          median {b:.2f} s (CPU: PostgreSQL {median(cpu):.2f} s)")
        goal("(a)/(b)", a / b, 2.0)
        goal("peak RSS of (a)", max(r["peak_rss_mib"] for r in runs), 500, unit=" MiB")
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
