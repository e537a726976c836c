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
import subprocess
import sys
import tempfile
from pathlib import Path

from clair_dev.throwaway import throwaway_combo

READY_TIMEOUT = 90.0
CONFIG = Path(__file__).resolve().parents[2] / "tests" / "fuzz" / "schemathesis.toml"


def main(argv: list[str]) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="clair-fuzz-"))
    workdir.chmod(0o755)  # the embedded server's account must traverse it when run as root
    try:
        with throwaway_combo(workdir, ready_timeout=READY_TIMEOUT) as combo:
            schemathesis = Path(sys.executable).parent / "schemathesis"
            command = [
                str(schemathesis),
                "--config-file",
                str(CONFIG),
                "run",
                f"{combo.api}/openapi/v1",
                "--checks",
                "all",
                "--max-examples",
                os.environ.get("FUZZ_EXAMPLES", "50"),
                *argv,
            ]
            return subprocess.call(command)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
