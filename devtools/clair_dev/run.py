"""`make run`: `clair` with a private PostgreSQL for every service that has no database.

    python -m clair_dev.run [--data DIR] [clair arguments ...]

A service whose connstring is neither in the config (file or `CLAIR_` environment) nor in
libpq's `PG*` environment gets a database of the embedded cluster in DIR/postgres (default
`.clair`), with migrations on: started here, stopped when `clair` exits. Everything else is
`clair` unchanged: its arguments and exit status; SIGINT and SIGTERM are passed on to it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from clair_common.cli.clair import arguments
from clair_common.config import ConfigError, default_config, load_config, resolve_connstring
from clair_dev.embedded_pg import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    dsn_with_database,
    ensure_database_sync,
)

SERVICES = ("indexer", "matcher", "notifier")


def sections_without_database(clair_argv: Sequence[str]) -> list[str]:
    """The services `clair` would start without a database; none when its config is broken
    (then `clair` itself says what is wrong)."""
    args = arguments(clair_argv)
    try:
        config = load_config(args.config, os.environ) if args.config else default_config(os.environ)
    except ConfigError:
        return []
    return [
        name
        for name in SERVICES
        if resolve_connstring(getattr(config, name).dsn, os.environ) is None
    ]


def run(data: Path, clair_argv: Sequence[str]) -> int:
    env = dict(os.environ)
    pg: EmbeddedPostgres | None = None
    missing = sections_without_database(clair_argv)
    if missing:
        data.mkdir(parents=True, exist_ok=True)
        pg = EmbeddedPostgres(data.resolve() / "postgres", port=None)
        dsn_root = pg.start()
        ensure_database_sync(dsn_root, "clair")
        dsn = dsn_with_database(dsn_root, "clair")
        for name in missing:
            env[f"CLAIR_{name.upper()}__CONNSTRING"] = dsn
            env[f"CLAIR_{name.upper()}__MIGRATIONS"] = "true"
        print(f"  data:     {data.resolve() / 'postgres'} (embedded PostgreSQL)", flush=True)
    try:
        # Its own process group: a terminal's Ctrl-C reaches it once, through us.
        child = subprocess.Popen(
            [sys.executable, "-m", "clair_common.cli.clair", *clair_argv], env=env, process_group=0
        )

        def forward(signum: int, _frame: FrameType | None) -> None:
            child.send_signal(signum)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, forward)
        code = child.wait()
    finally:
        if pg is not None:
            pg.stop()
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="clair_dev.run", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--data", type=Path, default=Path(".clair"))
    args, clair_argv = parser.parse_known_args(argv)
    try:
        return run(args.data, clair_argv)
    except EmbeddedPostgresError as err:
        print(f"clair_dev.run: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
