"""The clairctl subcommands: arguments, config, files, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg

from clair_matcher.airgap._errors import AirgapError
from clair_matcher.airgap._export import export_updaters
from clair_matcher.airgap._import import ImportReport, import_updaters
from clair_matcher.airgap._progress import Progress
from clair_matcher.airgap._streams import Compression, open_output, open_source
from clair_matcher.store import MatcherStore

log = logging.getLogger("clair.clairctl.airgap")


def _load_config(args: argparse.Namespace) -> Any:
    """`--config` (default `config.yaml`, env CLAIR_CONF); a missing default file means all
    defaults, a missing named file is an error."""
    from clair_common.config import default_config, load_config

    path = getattr(args, "config", None)
    if path is None:
        path = os.environ.get("CLAIR_CONF") or "config.yaml"
        if not Path(path).exists():
            return default_config(os.environ)
    return load_config(path, os.environ)


def _compression_flag(args: argparse.Namespace) -> Compression | None:
    if args.gzip and args.zstd:
        raise AirgapError("--gzip and --zstd are mutually exclusive")
    return "gzip" if args.gzip else "zstd" if args.zstd else None


def _export_command(args: argparse.Namespace) -> int:
    from clair_common.config import ConfigError

    try:
        cfg = _load_config(args)
        out, raw = open_output(args.file, _compression_flag(args))
    except (ConfigError, AirgapError, OSError) as exc:
        print(f"clairctl: export-updaters: {exc}", file=sys.stderr)
        return 2
    progress = Progress("exported", enabled=None if args.file else sys.stderr.isatty())
    try:
        report = asyncio.run(
            export_updaters(
                list(cfg.updaters.sets), dict(cfg.updaters.config), out, progress=progress
            )
        )
    finally:
        out.close() if out is not sys.stdout.buffer else out.flush()
        if raw is not None and raw is not sys.stdout.buffer:
            raw.close()
    for name, reason in sorted(report.errors.items()):
        print(f"clairctl: updater {name}: {reason}", file=sys.stderr)
    total = sum(report.records.values())
    log.info("exported %d records from %d updaters", total, len(report.records))
    return 1 if args.strict and report.errors else 0


async def _import_async(
    dsn: str, migrations: bool, args: argparse.Namespace, compression: Compression | None
) -> ImportReport:
    store = await MatcherStore.open(
        dsn, application_name="clairctl", migrations=migrations, max_size=2
    )
    progress = Progress("imported")
    stream, closers = open_source(args.source, compression, progress)
    try:
        return await import_updaters(store, stream, where=args.source, progress=progress)
    finally:
        for f in closers:
            f.close()
        await store.close()


def _import_command(args: argparse.Namespace) -> int:
    from clair_common.config import ConfigError, resolve_connstring

    try:
        cfg = _load_config(args)
        compression = _compression_flag(args)
    except (ConfigError, AirgapError) as exc:
        print(f"clairctl: import-updaters: {exc}", file=sys.stderr)
        return 2
    dsn = resolve_connstring(cfg.matcher.dsn, os.environ)
    if dsn is None:
        print("clairctl: no matcher.connstring configured (nor PG* variables)", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(_import_async(dsn, bool(cfg.matcher.migrations), args, compression))
    except (AirgapError, OSError, asyncpg.PostgresError) as exc:
        print(f"clairctl: import-updaters: {exc}", file=sys.stderr)
        return 1
    total = sum(n for _, n in report.imported)
    log.info(
        "imported %d operations (%d records), skipped %d",
        len(report.imported),
        total,
        len(report.skipped),
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the airgap subcommands to clairctl (entry point group `clair.clairctl`)."""
    config_help = "config file (default config.yaml, env CLAIR_CONF)"
    export = sub.add_parser("export-updaters", help="run the updaters and write their output")
    export.add_argument("file", nargs="?", help="output file (.gz/.zst compress); stdout if none")
    export.add_argument("-g", "--gzip", action="store_true", help="gzip the output")
    export.add_argument("-z", "--zstd", action="store_true", help="zstd the output")
    export.add_argument("--strict", action="store_true", help="exit 1 if any updater failed")
    export.add_argument("-c", "--config", default=argparse.SUPPRESS, help=config_help)
    export.set_defaults(func=_export_command)
    imp = sub.add_parser("import-updaters", help="store an export in the matcher's database")
    imp.add_argument("source", help="FILE, URL or - (stdin)")
    imp.add_argument("-g", "--gzip", action="store_true", help="the input is gzipped")
    imp.add_argument("-z", "--zstd", action="store_true", help="the input is zstd-compressed")
    imp.add_argument("-c", "--config", default=argparse.SUPPRESS, help=config_help)
    imp.set_defaults(func=_import_command)
