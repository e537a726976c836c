"""A throwaway `clair serve --mode combo` on its own embedded PostgreSQL (`clair_dev.run`), for
`make fuzz` and the load bench: no updaters (it runs offline), ports of its own, stopped and
its data left in `workdir` for the caller to remove."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clair_dev.ports import free_port
from clair_dev.processes import stop_process


@dataclass(frozen=True)
class Combo:
    api: str  # http://127.0.0.1:port
    introspection: str
    log: Path


@contextmanager
def throwaway_combo(workdir: Path, *, ready_timeout: float = 120.0) -> Iterator[Combo]:
    """Starts the server, waits for /readyz (SystemExit with the log's tail if it never comes),
    yields it, and stops it with SIGTERM."""
    workdir.mkdir(parents=True, exist_ok=True)
    api, intro = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAIR_", "PG"))}
    env |= {
        "CLAIR_HTTP_LISTEN_ADDR": f"127.0.0.1:{api}",
        "CLAIR_INTROSPECTION_ADDR": f"127.0.0.1:{intro}",
        "CLAIR_LAYER_CACHE": str(workdir / "layers"),
        "CLAIR_MATCHER__DISABLE_UPDATERS": "true",
        "CLAIR_LOG_LEVEL": "warn",
    }
    combo = Combo(f"http://127.0.0.1:{api}", f"http://127.0.0.1:{intro}", workdir / "combo.log")
    serve = [sys.executable, "-m", "clair_dev.run", "--data", str(workdir / "db")]
    with combo.log.open("wb") as log:
        proc = subprocess.Popen(
            [*serve, "serve", "--mode", "combo"], env=env, stdout=log, stderr=log
        )
        try:
            _wait_ready(proc, combo, ready_timeout)
            yield combo
        finally:
            stop_process(proc, signal.SIGTERM, 60)


def _wait_ready(proc: subprocess.Popen[bytes], combo: Combo, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(combo.introspection + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    tail = combo.log.read_text(errors="replace")[-3000:]
    raise SystemExit(f"clair serve (combo) not ready after {timeout:.0f}s:\n{tail}")
