"""Each updater's bookkeeping: the fingerprint of its newest operation and its last run's status."""

from __future__ import annotations

import asyncpg

from clair_matcher.store._ingest import KIND_VULNERABILITY


async def latest_fingerprint(
    pool: asyncpg.Pool, updater: str, kind: str = KIND_VULNERABILITY
) -> str:
    """Fingerprint of the updater's newest operation ("" when it has none)."""
    value = await pool.fetchval(
        "SELECT u.fingerprint FROM latest_update_operation l"
        " JOIN update_operation u ON u.id = l.uo_id WHERE l.updater = $1 AND l.kind = $2",
        updater,
        kind,
    )
    return str(value) if value is not None else ""


async def record_status(
    pool: asyncpg.Pool, updater: str, *, fingerprint: str, error: str | None
) -> None:
    """One row per updater: the last attempt, and the last success when this one succeeded."""
    ok = error is None
    await pool.execute(
        "INSERT INTO updater_status AS s (updater_name, last_attempt, last_success,"
        " last_run_succeeded, last_attempt_fingerprint, last_error)"
        " VALUES ($1, now(), CASE WHEN $2 THEN now() END, $2, $3, $4)"
        " ON CONFLICT (updater_name) DO UPDATE SET last_attempt = EXCLUDED.last_attempt,"
        " last_success = COALESCE(EXCLUDED.last_success, s.last_success),"
        " last_run_succeeded = EXCLUDED.last_run_succeeded,"
        " last_attempt_fingerprint = EXCLUDED.last_attempt_fingerprint,"
        " last_error = EXCLUDED.last_error",
        updater,
        ok,
        fingerprint,
        error or "",
    )


async def has_fingerprint(pool: asyncpg.Pool, updater: str, kind: str, fingerprint: str) -> bool:
    """Whether any operation of `updater` and `kind` (not only the newest) has `fingerprint`."""
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM update_operation"
            " WHERE updater = $1 AND kind = $2 AND fingerprint = $3)",
            updater,
            kind,
            fingerprint,
        )
    )


async def status_names_under(pool: asyncpg.Pool, prefix: str) -> list[str]:
    """The updaters with a status row whose names start with `prefix` (not `prefix` itself)."""
    rows = await pool.fetch(
        "SELECT updater_name FROM updater_status"
        " WHERE starts_with(updater_name, $1) AND updater_name <> $1",
        prefix,
    )
    return [row["updater_name"] for row in rows]
