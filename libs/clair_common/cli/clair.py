"""`clair`: run the services.

    clair serve [--mode combo|indexer|matcher|notifier] [--config FILE]

Clair's own spelling works too: `clair -mode indexer -conf config.yaml`, and `CLAIR_MODE` /
`CLAIR_CONF`. Unlike Clair, the mode defaults to combo and the config file is optional.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from clair_common.server import MODES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clair", description="Clair v4 container scanner")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.add_argument(
        "--mode", "-mode", type=str.lower, default=os.environ.get("CLAIR_MODE", "combo").lower()
    )
    parser.add_argument(
        "--config", "--conf", "-conf", dest="config", default=os.environ.get("CLAIR_CONF") or None
    )
    return parser


def arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`clair`'s command line: command, mode and config file (environment defaults applied)."""
    return _parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from clair_common.config import (
        ConfigError,
        default_config,
        lint_config,
        load_config,
        validate_for_mode,
    )
    from clair_common.server import ListenError, ServeOptions, run
    from clair_common.telemetry import setup_logging, setup_tracing, start_metrics_push

    args = arguments(argv)
    if args.mode not in MODES:
        print(
            f"clair: unknown mode {args.mode!r} (want one of {', '.join(MODES)})", file=sys.stderr
        )
        return 2
    try:
        config = load_config(args.config, os.environ) if args.config else default_config(os.environ)
        validate_for_mode(config, args.mode, args.config or "environment")
    except ConfigError as err:
        print(f"clair: {err}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    for warning in lint_config(config):
        logging.getLogger("clair.config").warning("%s: %s", args.config or "environment", warning)
    setup_tracing(config.trace, config.log_level, args.mode)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    from clair_common.db.pool import DatabaseUnavailable

    pusher = start_metrics_push(config.metrics, args.mode)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(ServeOptions(args.mode, config)))
    except (DatabaseUnavailable, ListenError) as err:
        print(f"clair: {args.config or 'environment'}: {err}", file=sys.stderr)
        return 1
    finally:
        if pusher is not None:
            pusher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
