"""Load: many clients against a whole deployment, `make up`'s (NGINX, two indexers, a matcher)
and combo mode (`make run`'s), at 8, 64 and 256 concurrent clients.

Each client loops over a mix of what registries and CI send: a re-POST of an indexed manifest
(its layer served by a local HTTP server), its vulnerability report, and the index state. Per
target and client count, three rounds of --seconds each; printed per round: requests/s,
p50/p99 latency, errors (any status but 200/201/202, and connection failures) with 429s
counted apart, and the resident memory and open descriptors summed over the `clair serve`
processes after the round, so growth across rounds shows.

Usage: .venv/bin/python bench/load.py [--seconds 5] [--clients 8,64,256] [--targets combo,up]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clair_dev.throwaway import throwaway_combo  # noqa: E402
from tests.fixtures.images import build_layer, sha256_digest  # noqa: E402

from bench._harness import percentile  # noqa: E402
from bench.ingress import make_up  # noqa: E402

LAYER = build_layer({"etc/os-release": b'ID=debian\nVERSION_ID="12"\n'})
MANIFEST_HASH = "sha256:" + "5e" * 32


def _clair_processes(work: Path) -> list[int]:
    """`clair serve` processes started for this run (their environment or arguments name
    `work`), not other servers on the machine."""
    marker = str(work).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"clair_common.cli.clair" not in cmdline or b"serve" not in cmdline:
                continue
            if marker in cmdline or marker in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def resources(pids: list[int]) -> tuple[float, int]:
    """Resident MiB and open descriptors summed over `pids`."""
    rss, fds = 0.0, 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) / 1024
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return rss, fds


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def layer_server() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="bench-load-layer-"))
    (root / "layer").write_bytes(LAYER)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/layer"
    finally:
        server.shutdown()


@contextmanager
def combo(work: Path) -> Iterator[str]:
    with throwaway_combo(work / "combo") as server:
        yield server.api


async def one_round(base: str, clients: int, seconds: float, uri: str) -> dict[str, float]:
    manifest = {"hash": MANIFEST_HASH, "layers": [{"hash": sha256_digest(LAYER), "uri": uri}]}
    body = json.dumps(manifest).encode()
    requests = [
        ("POST", "/indexer/api/v1/index_report", body),
        ("GET", f"/matcher/api/v1/vulnerability_report/{MANIFEST_HASH}", None),
        ("GET", "/indexer/api/v1/index_state", None),
    ]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as http:

        async def client(n: int) -> None:
            i = n
            while time.monotonic() < stop:
                method, path, data = requests[i % len(requests)]
                i += 1
                started = time.perf_counter()
                try:
                    async with http.request(
                        method, path, data=data, headers={"Content-Type": "application/json"}
                    ) as resp:
                        await resp.read()
                        statuses[str(resp.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - started)

        began = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.monotonic() - began
    ok = statuses["200"] + statuses["201"] + statuses["202"]
    return {
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "429": statuses["429"],
        "errors": sum(statuses.values()) - ok - statuses["429"],
    }


def run_target(
    name: str, base: str, uri: str, clients: list[int], seconds: float, work: Path
) -> None:
    # Index once so the re-POSTs measure the steady state, not the first scan.
    asyncio.run(one_round(base, 1, 0.5, uri))
    pids = _clair_processes(work)
    print(f"\n== {name}: {len(pids)} clair serve process(es)")
    print("clients round     req/s   p50 ms   p99 ms   429  errors  RSS MiB  fds")
    for count in clients:
        for round_no in range(1, 4):
            r = asyncio.run(one_round(base, count, seconds, uri))
            time.sleep(1)  # let the servers close the round's connections before counting
            rss, fds = resources(pids)
            print(
                f"{count:7d} {round_no:5d} {r['rps']:9.0f} {r['p50']:8.1f} {r['p99']:8.1f}"
                f" {r['429']:5.0f} {r['errors']:7.0f} {rss:8.0f} {fds:4d}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", default="8,64,256")
    parser.add_argument("--targets", default="combo,up")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    work.chmod(0o755)
    with layer_server() as uri:
        for target in args.targets.split(","):
            if target == "combo":
                with combo(work) as base:
                    run_target("combo", base, uri, clients, args.seconds, work)
            elif target == "up":
                config: dict[str, object] = {"matcher": {"disable_updaters": True}}
                with make_up(work, config) as (ingress, _):
                    run_target("make up (NGINX)", ingress, uri, clients, args.seconds, work)
            else:
                raise SystemExit(f"unknown target {target!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
