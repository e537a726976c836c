"""`clairctl admin pre|post VERSION` on a real database: migrations before, clean-ups after."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import yaml

from clair_common.models import Package, Vulnerability
from clair_matcher.store import MatcherStore
from tests.clairctl.stack import run_clairctl


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables"
            " WHERE table_schema IN ('indexer', 'matcher', 'notifier')"
        )
    finally:
        await conn.close()
    return {r["t"] for r in rows}


async def test_pre_applies_migrations_once(pg_dsn: str, tmp_path: Path) -> None:
    services = {s: {"connstring": pg_dsn} for s in ("indexer", "matcher", "notifier")}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(services))
    assert await _tables(pg_dsn) == set()
    code, out, err = await run_clairctl("admin", "pre", "v4.7.0", cwd=tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["indexer", "matcher", "notifier"]
    assert all("applied migrations [1" in line for line in lines), lines
    assert {"indexer.manifest", "matcher.vuln", "notifier.migrations"} <= await _tables(pg_dsn)
    code, out, _ = await run_clairctl("admin", "pre", "4.8.1", cwd=tmp_path)
    assert code == 0
    assert out.splitlines() == [f"{s}: migrations up to date" for s in services]


async def test_post_4_7_0_drops_pyupio_only(pg_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"matcher": {"connstring": pg_dsn}}))
    assert (await run_clairctl("-c", "c.yaml", "admin", "pre", "v4.7.0", cwd=tmp_path))[0] == 0
    pool = await asyncpg.create_pool(pg_dsn, server_settings={"search_path": "matcher"})
    assert pool is not None
    try:
        for updater in ("pyupio", "osv/pypi"):
            vuln = Vulnerability(
                updater=updater,
                name=f"{updater}-1",
                package=Package(name="django", kind="binary"),
                fixed_in_version="3.2.1",
            )
            await MatcherStore(pool).update_vulnerabilities(updater, "fp", [vuln])
        code, out, err = await run_clairctl("-c", "c.yaml", "admin", "post", "4.7.0", cwd=tmp_path)
        assert code == 0, err
        assert out.strip() == "matcher: pyupio: 1 update operations, 1 vulnerabilities deleted"
        left = await pool.fetch(
            "SELECT updater FROM vuln UNION SELECT updater FROM update_operation"
        )
        assert {r["updater"] for r in left} == {"osv/pypi"}
    finally:
        await pool.close()


async def test_versions_without_tasks_and_bad_input(tmp_path: Path) -> None:
    code, out, err = await run_clairctl("admin", "post", "v9.9.9", cwd=tmp_path)
    assert (code, out, err) == (0, "", "")  # as Clair: nothing to do for this version
    code, _, err = await run_clairctl("admin", "pre", "banana", cwd=tmp_path)
    assert code == 2 and "not a version" in err
    # No databases configured (make run's embedded one lives with the server): skipped.
    code, out, err = await run_clairctl("admin", "pre", "v4.7.3", cwd=tmp_path)
    assert code == 0, err
    assert out.splitlines() == [
        f"{s}: skipped: no {s}.connstring configured (nor PG* variables)"
        for s in ("indexer", "matcher", "notifier")
    ]


async def test_unreachable_database_is_one_line_naming_its_key(tmp_path: Path) -> None:
    # Clair 4.8's database block names the database: errors name that key, not connstring.
    dsn = "host=127.0.0.1 port=1 user=clair dbname=clair connect_timeout=5"
    config = {"indexer": {"database": {"name": "postgresql", "postgresql": {"dsn": dsn}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    code, out, err = await run_clairctl("admin", "pre", "v4.7.3", cwd=tmp_path)
    assert code == 1, (out, err)
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert "indexer.database.postgresql.dsn: cannot connect" in line
