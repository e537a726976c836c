"""`clairctl admin pre|post VERSION`: what operators run in a Job around an upgrade, as Clair's.

Tasks come from the services through the `clair.clairctl.admin` entry-point group (each entry
returns a list of `AdminTask`), so this module imports no service. A task lists the versions
it belongs to, or none to run before/after every upgrade. As in Clair, a well-formed version
with no task exits 0, so a Job can always pass the version it upgrades to.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

import asyncpg

ADMIN_GROUP = "clair.clairctl.admin"
# Semantic versions, with Clair's optional leading "v".
_VERSION = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
)


class AdminError(RuntimeError):
    """A task that could not run; the message says why."""


class SkipTask(Exception):  # not an error: the task does not apply here
    """The task has nothing to work on in this config (e.g. that service's database)."""


@dataclass(frozen=True)
class AdminTask:
    phase: Literal["pre", "post"]
    name: str
    help: str
    run: Callable[[Any], Awaitable[str]]  # given the loaded Config; returns what it did
    versions: tuple[str, ...] = ()  # empty: every upgrade

    def applies(self, version: str) -> bool:
        return not self.versions or version.removeprefix("v") in {
            v.removeprefix("v") for v in self.versions
        }


def service_dsn(cfg: Any, service: str) -> str:
    """The service's database (`connstring` or the `database` block) resolved as `clair serve`
    resolves it; SkipTask when unset."""
    from clair_common.config import resolve_connstring

    dsn = resolve_connstring(getattr(cfg, service).dsn, os.environ)
    if dsn is None:
        raise SkipTask(f"no {service_dsn_key(cfg, service)} configured (nor PG* variables)")
    return dsn


def service_dsn_key(cfg: Any, service: str) -> str:
    """The config key that names the service's database, for messages: as `clair serve`'s."""
    return f"{service}.{getattr(cfg, service).dsn_key}"


def migrate_task(service: str, migrate: Callable[..., Awaitable[list[int]]]) -> AdminTask:
    """The "pre" task every service with a database has: apply its pending migrations.
    `migrate(dsn, key=...)`: `key` is the config key named in its errors.

    Clair's pre-4.7 tasks build indexes concurrently ahead of the upgrade; here every index
    belongs to a migration, so "pre" applies the pending ones under the migration lock."""

    async def run(cfg: Any) -> str:
        applied = await migrate(service_dsn(cfg, service), key=service_dsn_key(cfg, service))
        return f"applied migrations {applied}" if applied else "migrations up to date"

    return AdminTask("pre", service, f"apply pending {service} migrations", run)


def discover_tasks() -> list[AdminTask]:
    tasks: list[AdminTask] = []
    for ep in sorted(entry_points(group=ADMIN_GROUP), key=lambda e: e.name):
        tasks.extend(ep.load()())
    return tasks


def _config(args: argparse.Namespace) -> Any:
    from clair_common.config import default_config, load_config

    path = getattr(args, "config", None) or os.environ.get("CLAIR_CONF")
    if path is None:
        if not Path("config.yaml").is_file():
            return default_config(os.environ)
        path = "config.yaml"
    return load_config(path, os.environ)


async def run_tasks(tasks: Sequence[AdminTask], cfg: Any) -> list[str]:
    out = []
    for task in tasks:
        try:
            out.append(f"{task.name}: {await task.run(cfg)}")
        except SkipTask as skip:
            out.append(f"{task.name}: skipped: {skip}")
    return out


def _command(args: argparse.Namespace) -> int:
    from clair_common.config import ConfigError
    from clair_common.db.pool import DatabaseUnavailable

    version = args.version
    if not _VERSION.match(version):
        print(f"clairctl: admin {args.phase}: {version!r} is not a version", file=sys.stderr)
        return 2
    tasks = [t for t in discover_tasks() if t.phase == args.phase and t.applies(version)]
    if not tasks:
        return 0  # as Clair: nothing to do for this version
    try:
        cfg = _config(args)
        for line in asyncio.run(run_tasks(tasks, cfg)):
            print(line)
    except (ConfigError, AdminError, DatabaseUnavailable, OSError, asyncpg.PostgresError) as exc:
        print(f"clairctl: admin {args.phase} {version}: {exc}", file=sys.stderr)
        return 1
    return 0


def register_admin(sub: Any) -> None:
    admin = sub.add_parser(
        "admin", help="upgrade tasks for a Job: `admin pre VERSION`, `admin post VERSION`"
    )
    phases = admin.add_subparsers(dest="phase", required=True)
    for phase, text in (
        ("pre", "run before deploying VERSION (migrations, indexes)"),
        ("post", "run after VERSION is deployed (clean-ups)"),
    ):
        cmd = phases.add_parser(phase, help=text)
        cmd.add_argument("version", metavar="VERSION", help="the version being deployed")
        cmd.set_defaults(func=_command)
