"""Per-service schema migrations: SQL files shipped in the package, applied in order.

Each service owns a schema and a `<schema>.migrations` table. The runner holds an advisory
lock on a dedicated connection so two replicas never migrate at once, and applies each file in
its own transaction.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

from clair_common.db.locks import lock_key
from clair_common.db.pool import connect

log = logging.getLogger("clair.db.migrate")
_NAME_RE = re.compile(r"^(\d+)_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """Migrations in `<package>/migrations/NNN_name.sql`, ordered by number."""
    found = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"{package}: duplicate migration numbers {versions}")
    return found


async def migrate(
    dsn: str | None,
    schema: str,
    package: str,
    *,
    up_to: int | None = None,
    key: str | None = None,
) -> list[int]:
    """Applies pending migrations (those numbered at most `up_to`, when given: the schema of
    an earlier release); returns the versions applied now. `key`, the config key that gave
    `dsn`, is named in errors (default `<schema>.connstring`).

    A migration and its row in the migrations table commit together, so a database lost in
    the middle of one leaves it unapplied, and the next run starts it again.
    """
    migrations = [m for m in load_migrations(package) if up_to is None or m.version <= up_to]
    conn = await connect(dsn, application_name="clair-migrate", key=key or f"{schema}.connstring")
    applied_now: list[int] = []
    lock = lock_key(f"migrations:{schema}")
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", lock)
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".migrations ('
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(f'SELECT version FROM "{schema}".migrations')
        done = {r["version"] for r in rows}
        for m in migrations:
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                await conn.execute(m.sql)
                await conn.execute(
                    f'INSERT INTO "{schema}".migrations (version, name) VALUES ($1, $2)',
                    m.version,
                    m.name,
                )
            log.info("applied migration %s/%03d_%s", schema, m.version, m.name)
            applied_now.append(m.version)
    except BaseException:
        # The session's end releases the lock; a server gone or frozen would never answer an
        # unlock or a polite close (and the unlock's error would hide the one that matters).
        conn.terminate()
        raise
    await conn.close()  # ends the session, and with it the advisory lock
    return applied_now
