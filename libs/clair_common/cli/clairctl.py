"""`clairctl`: administrative commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _check_config(args: argparse.Namespace) -> int:
    from clair_common.config import ConfigError, dump_config, load_config, merged_document

    status = 0
    for path in args.files:
        try:
            load_config(path)
            merged = merged_document(path)
        except ConfigError as err:
            print(str(err), file=sys.stderr)
            status = 1
            continue
        print(dump_config(merged, fmt=args.output))
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clairctl", description="Clair administration")
    parser.add_argument("-D", "--debug", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="print the merged config, or its errors")
    check.add_argument("-o", "--output", choices=["json", "yaml"], default="yaml")
    check.add_argument("files", nargs="+")
    check.set_defaults(func=_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
