"""`clairctl`: administrative commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

# Services add subcommands through this entry-point group (`register(subparsers)`), so this
# package never imports a service (e.g. clair_matcher.airgap: export-/import-updaters).
SUBCOMMAND_GROUP = "clair.clairctl"


def _check_config(args: argparse.Namespace) -> int:
    from clair_common.config import (
        ConfigError,
        connstring_problems,
        dump_config,
        lint_config,
        load_config,
        merged_document,
    )

    status = 0
    for path in args.files:
        try:
            cfg = load_config(path)
            problems = connstring_problems(cfg, "combo", path)
            if problems:
                raise ConfigError(problems)
            for warning in lint_config(cfg):
                print(f"{path}: warning: {warning}", file=sys.stderr)
            merged = merged_document(path)
        except ConfigError as err:
            print(str(err), file=sys.stderr)
            status = 1
            continue
        print(dump_config(merged, fmt=args.output))
    return status


def _parser() -> argparse.ArgumentParser:
    from clair_common.clairctl.commands import register

    parser = argparse.ArgumentParser(
        prog="clairctl", description="Scan images with Clair, and administer it"
    )
    parser.add_argument("-D", "--debug", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument(
        "-c", "--config", default=None, help="config file (default config.yaml, env CLAIR_CONF)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="print the merged config, or its errors")
    check.add_argument("-o", "--output", choices=["json", "yaml"], default="json")
    check.add_argument("files", nargs="+")
    check.set_defaults(func=_check_config)
    register(sub)
    for ep in sorted(entry_points(group=SUBCOMMAND_GROUP), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from clair_common.clairctl.commands import check_images

    parser = _parser()
    args = parser.parse_args(argv)
    check_images(args, parser)
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
