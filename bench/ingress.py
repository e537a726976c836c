"""Benchmark: vulnerability reports per second through the NGINX ingress, in `make up`'s shape.

`make up`'s supervisor (clair_dev.up) starts an embedded PostgreSQL, two indexer
processes, a matcher and NGINX in front of them. Its matcher loads bench/_feeds.py's Debian
feed (--records rows) from a local server; the minbase Debian 12 image (../shared/data/layers)
is pushed to a local registry and indexed through the ingress. Then wrk (C, 2 threads) GETs its
vulnerability report with --connections connections for --seconds, alternately:

  ingress   through NGINX, as clients in a cluster do
  direct    the matcher's own listener (the ceiling the ingress path is compared with)

once with the default config (report cache on) and once on a fresh start with
matcher.report_cache_bytes 0 (every report matched). Goals: at least 500 reports/s through the
ingress with the cache on, and 165/s (3x the 55/s measured before this bench) with it off.

Usage: .venv/bin/python bench/ingress.py [--records 100000] [--seconds 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clair_dev.processes import stop_process  # noqa: E402
from tests.fixtures.images import layer_from_dir  # noqa: E402
from tests.fixtures.registry import LocalRegistry, _ensure_binary, _start, _stop  # noqa: E402
from tests.fixtures.server import free_port  # noqa: E402

from bench._feeds import debian_updater_config, installed_sources, write_debian_feed  # noqa: E402
from bench._harness import goal, interleaved, median, summary  # noqa: E402
from bench.ingest import INSTALLED_STATUS, serve_directory  # noqa: E402

SHARED = Path(os.environ.get("CLAIR_TEST_DATA", ROOT.parent / "shared" / "data"))
MINBASE = SHARED / "layers" / "debian-12-bookworm-minbase-debootstrap"
GOAL_CACHED = 500.0
GOAL_UNCACHED = 165.0


@contextmanager
def make_up(work: Path, config: dict[str, object], matchers: int = 1) -> Iterator[tuple[str, str]]:
    """`make up` with `config`; yields (ingress URL, the matcher's own URL)."""
    data = work / f"up-{time.monotonic_ns()}"
    data.mkdir()
    conf = data / "config.json"
    conf.write_text(json.dumps(config))
    port = free_port()
    command = [sys.executable, "-m", "clair_dev.up", "--data", str(data)]
    command += ["--port", str(port), "--config", str(conf), "--matchers", str(matchers)]
    log = (data / "up.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while b"Ctrl-C stops everything" not in (data / "up.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("make up failed:\n" + (data / "up.log").read_text()[-3000:])
            time.sleep(0.2)
        nginx_conf = (data / "nginx" / "nginx.conf").read_text()
        upstream = re.search(r"upstream clair_matcher\s*\{[^}]*?server\s+([\d.]+:\d+)", nginx_conf)
        if upstream is None:
            raise SystemExit("no matcher upstream in the rendered nginx.conf")
        yield f"http://127.0.0.1:{port}", f"http://{upstream.group(1)}"
    finally:
        stop_process(proc, signal.SIGINT, 30)
        log.close()


def _request(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def index_and_wait(ingress: str, manifest: dict[str, object]) -> str:
    """Index through the ingress and wait for a 200 report (the matcher's feed loaded)."""
    status, body = _request(f"{ingress}/indexer/api/v1/index_report", json.dumps(manifest).encode())
    if status != 201:
        raise SystemExit(f"index failed: {status} {body[:500]!r}")
    url = f"{ingress}/matcher/api/v1/vulnerability_report/{manifest['hash']}"
    deadline = time.monotonic() + 300
    while (status := _request(url)[0]) != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"report not ready: {status}")
        time.sleep(0.5)
    return f"/matcher/api/v1/vulnerability_report/{manifest['hash']}"


def wrk_rate(url: str, seconds: int, connections: int) -> float:
    """2xx answers per second, from wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed (Debian package wrk)")
    command = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", url]
    command += ["-H", "Accept-Encoding: gzip"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    requests = refused = 0
    duration = float(seconds)
    for line in out.splitlines():
        words = line.split()
        if " requests in " in line:
            requests, duration = int(words[0]), float(words[3].rstrip("s,"))
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            refused = int(words[-1])
    if not requests:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return (requests - refused) / duration


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--matchers", type=int, default=1, help="matcher processes")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingress-"))
    work.chmod(0o755)  # the embedded PostgreSQL runs as an unprivileged user when we are root
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        (work / "registry").mkdir()
        proc, base_url = _start(_ensure_binary(), work / "registry")
        cleanup.callback(_stop, proc)
        registry = LocalRegistry(base_url, work / "registry" / "storage")
        manifest = registry.push_image_sync("minbase", [layer_from_dir(MINBASE)]).to_json()
        sources = installed_sources(MINBASE / "var/lib/dpkg/status")
        for name, version in installed_sources(INSTALLED_STATUS).items():
            sources.setdefault(name, version)
        rows = write_debian_feed(work / "feed", args.records, sources)
        feed_url = cleanup.enter_context(serve_directory(work / "feed"))
        print(f"feed: {rows:,} Debian rows; image: debian 12 minbase (88 packages)")
        base: dict[str, object] = {
            "log_level": "warn",
            "updaters": {"sets": ["debian"], "config": debian_updater_config(feed_url)},
        }
        rates: dict[str, float] = {}
        for label, matcher in (("cached", {}), ("uncached", {"report_cache_bytes": 0})):
            config = {**base, "matcher": matcher} if matcher else base
            with make_up(work, config, args.matchers) as (ingress, direct):
                path = index_and_wait(ingress, manifest)
                samples = interleaved(
                    {
                        "ingress": partial(
                            wrk_rate, ingress + path, args.seconds, args.connections
                        ),
                        "direct": partial(wrk_rate, direct + path, args.seconds, args.connections),
                    },
                    args.rounds,
                )
            via, alone = median(samples["ingress"]), median(samples["direct"])
            rates[label] = via
            print(
                f"{label:<9} through NGINX {via:>8,.0f}/s   matcher directly {alone:>8,.0f}/s"
                f"   ratio {via / alone:.2f}"
            )
        goal("reports/s through NGINX, cache on", rates["cached"], GOAL_CACHED, at_most=False)
        goal("reports/s through NGINX, cache off", rates["uncached"], GOAL_UNCACHED, at_most=False)
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
