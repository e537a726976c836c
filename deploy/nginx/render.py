"""Render clair.conf.template into an nginx.conf for the given replicas.

Standard library only, so it runs wherever nginx does:

    python render.py --listen 8080 --indexer 10.0.0.1:6060 --indexer 10.0.0.2:6060 \
        --matcher 10.0.0.3:6060 --output /etc/clair/ingress.conf
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

TEMPLATE = Path(__file__).with_name("clair.conf.template")
SERVICES = ("indexer", "matcher", "notifier")

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_SECTION = re.compile(r"^[ \t]*# begin (\w+)\n(.*?)^[ \t]*# end \1\n", re.MULTILINE | re.DOTALL)
# Values land inside directives: nothing that could end one (;), open a block or quote.
_ADDRESS = re.compile(r"unix:/[^\s;{}'\"]+|[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}")
_LISTEN = re.compile(r"\d{1,5}|[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}")
_USER = re.compile(r"[A-Za-z0-9_.\-]+( [A-Za-z0-9_.\-]+)?")
_WORKERS = re.compile(r"auto|[1-9]\d*")
_PATH = re.compile(r"[^\s;{}'\"]+")
_SERVER_INDENT = "\n        "


def _checked(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"bad {what}: {value!r}")
    return value


def render(
    template: str,
    *,
    listen: str,
    upstreams: Mapping[str, Sequence[str]],
    user: str | None = None,
    worker_processes: str = "auto",
    access_log: str = "access.log",
) -> str:
    """The config text. `upstreams` maps a service to its replicas' host:port addresses; a
    service missing or with none has its sections left out. `user` ("name [group]") is needed
    only when nginx starts as root."""
    unknown = set(upstreams) - set(SERVICES)
    if unknown:
        raise ValueError(f"unknown services {sorted(unknown)}; known: {', '.join(SERVICES)}")
    values = {
        "listen": _checked(_LISTEN, listen, "listen address"),
        "user": f"user {_checked(_USER, user, 'user')};" if user else "",
        "worker_processes": _checked(_WORKERS, worker_processes, "worker_processes"),
        "access_log": "off"
        if access_log == "off"
        else _checked(_PATH, access_log, "access log path") + " clair",
    }
    for service in SERVICES:
        servers = [_checked(_ADDRESS, a, f"{service} address") for a in upstreams.get(service, ())]
        values[f"{service}_servers"] = _SERVER_INDENT.join(f"server {a};" for a in servers)

    def section(match: re.Match[str]) -> str:
        return match[2] if values.get(f"{match[1]}_servers") else ""

    def fill(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise ValueError(f"template has an unknown placeholder {match[0]}")
        return values[match[1]]

    header = "# Rendered by deploy/nginx/render.py: change the template, not this file.\n"
    return header + _PLACEHOLDER.sub(fill, _SECTION.sub(section, template))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="port or host:port to listen on")
    for service in SERVICES:
        parser.add_argument(
            f"--{service}",
            action="append",
            default=[],
            metavar="HOST:PORT",
            help=f"a {service} replica's API address (repeat for each)",
        )
    parser.add_argument("--user", help='"name [group]" for worker processes, when run as root')
    parser.add_argument("--worker-processes", default="auto")
    parser.add_argument("--access-log", default="access.log", help="path, or 'off'")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--output", type=Path, help="write here instead of standard output")
    args = parser.parse_args(argv)
    try:
        text = render(
            args.template.read_text(),
            listen=args.listen,
            upstreams={service: getattr(args, service) for service in SERVICES},
            user=args.user,
            worker_processes=args.worker_processes,
            access_log=args.access_log,
        )
    except (OSError, ValueError) as err:
        print(f"render.py: {err}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
