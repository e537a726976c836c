"""`make fuzz`: schemathesis against this server's own OpenAPI document.

Starts `clair serve` in combo mode on a throwaway embedded PostgreSQL (`clair_dev.run`; no
updaters, so it runs offline), waits for /readyz, runs `schemathesis run` on
`GET /openapi/v1` with every check (server errors, answers that do not match the document,
undeclared statuses and headers), and stops the server. Exit status is schemathesis's; extra
arguments are passed to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from clair_dev.ports import free_port
from clair_dev.processes import stop_process

READY_TIMEOUT = 90.0
CONFIG = Path(__file__).resolve().parents[2] / "tests" / "fuzz" / "schemathesis.toml"


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"fuzz: clair serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"fuzz: clair serve not ready after {READY_TIMEOUT:.0f}s")


def main(argv: list[str]) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="clair-fuzz-"))
    workdir.chmod(0o755)  # the embedded server's account must traverse it when run as root
    api, intro = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAIR_", "PG"))}
    env |= {
        "CLAIR_HTTP_LISTEN_ADDR": f"127.0.0.1:{api}",
        "CLAIR_INTROSPECTION_ADDR": f"127.0.0.1:{intro}",
        "CLAIR_LAYER_CACHE": str(workdir / "layers"),
        "CLAIR_MATCHER__DISABLE_UPDATERS": "true",
        "CLAIR_LOG_LEVEL": "warn",
    }
    log = (workdir / "clair.log").open("wb")
    serve = [sys.executable, "-m", "clair_dev.run", "--data", str(workdir / "db")]
    proc = subprocess.Popen([*serve, "serve", "--mode", "combo"], env=env, stdout=log, stderr=log)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{intro}/readyz")
        schemathesis = Path(sys.executable).parent / "schemathesis"
        command = [
            str(schemathesis),
            "--config-file",
            str(CONFIG),
            "run",
            f"http://127.0.0.1:{api}/openapi/v1",
            "--checks",
            "all",
            "--max-examples",
            os.environ.get("FUZZ_EXAMPLES", "50"),
            *argv,
        ]
        return subprocess.call(command)
    finally:
        stop_process(proc, signal.SIGTERM, 30)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
