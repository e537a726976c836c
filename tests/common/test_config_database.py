"""The `database` block of Clair 4.8+ (`database: {name: postgresql, postgresql: {dsn}}`) beside
the older `connstring`: both forms, the precedence Clair gives them, and a real start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from clair_common.config import (
    ConfigError,
    default_config,
    lint_config,
    validate_document,
    validate_for_mode,
)
from clair_common.db.health import DatabaseMonitor
from clair_common.server import dsn_key
from tests.common.test_connstring import _run
from tests.fixtures.server import clair_server, free_port, wait_ready

SERVICES = ("indexer", "matcher", "notifier")


def database(dsn: str, **extra: object) -> dict[str, object]:
    return {"name": "postgresql", "postgresql": {"dsn": dsn}, **extra}


def test_older_connstring_and_newer_database_block_name_the_same_database() -> None:
    old = validate_document({s: {"connstring": f"host=db dbname={s}"} for s in SERVICES}, "c")
    new = validate_document(
        {s: {"database": database(f"host=db dbname={s}")} for s in SERVICES}, "c"
    )
    for service in SERVICES:
        assert getattr(old, service).dsn == getattr(new, service).dsn == f"host=db dbname={service}"
        assert (getattr(old, service).dsn_key, getattr(new, service).dsn_key) == (
            "connstring",
            "database.postgresql.dsn",
        )
    assert lint_config(new) == lint_config(old)
    # No DSN in the block: libpq's PG* environment, as an empty connstring.
    bare = validate_document({"indexer": {"database": {"name": "postgresql"}}}, "c")
    assert bare.indexer.dsn == ""


def test_database_block_wins_over_connstring_with_a_warning() -> None:
    cfg = validate_document(
        {"matcher": {"connstring": "host=old", "database": database("host=new")}}, "c.yaml"
    )
    assert cfg.matcher.dsn == "host=new"
    assert "matcher.connstring: ignored; matcher.database is used" in lint_config(cfg)


def test_database_migrations_wins_over_the_section_key() -> None:
    cfg = validate_document(
        {
            "indexer": {"migrations": False, "database": database("", migrations=True)},
            "matcher": {"migrations": True, "database": database("", migrations=False)},
            "notifier": {"migrations": True, "database": database("")},
        },
        "c",
    )
    assert (cfg.indexer.migrations, cfg.matcher.migrations, cfg.notifier.migrations) == (
        True,
        False,
        True,
    )


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            {"name": "postgres"},
            'c.yaml: notifier.database.name: unknown database "postgres" '
            '(did you mean "postgresql"?)',
        ),
        (
            {"name": "sqlite"},
            'c.yaml: notifier.database.name: unknown database "sqlite": '
            'only "postgresql" is supported',
        ),
        ({}, "c.yaml: notifier.database.name: required key is missing"),
        (
            {"name": "postgresql", "postgresql": {"dsn": "x", "pool": 1}},
            "c.yaml: notifier.database.postgresql.pool: unknown key",
        ),
    ],
)
def test_bad_database_blocks_name_the_key(block: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_document({"notifier": {"database": block}}, "c.yaml")
    assert info.value.problems == (message,)


def test_connection_string_errors_name_the_key_in_use() -> None:
    cfg = validate_document({"indexer": {"database": database("port=notaport")}}, "c.yaml")
    with pytest.raises(ConfigError, match=r"^c\.yaml: indexer\.database\.postgresql\.dsn: "):
        validate_for_mode(cfg, "indexer", "c.yaml")


def test_database_block_from_the_environment() -> None:
    cfg = default_config(
        {
            "CLAIR_MATCHER__DATABASE__NAME": "postgresql",
            "CLAIR_MATCHER__DATABASE__POSTGRESQL__DSN": "host=db",
            "CLAIR_MATCHER__DATABASE__MIGRATIONS": "true",
        }
    )
    assert (cfg.matcher.dsn, cfg.matcher.migrations) == ("host=db", True)


def test_combo_starts_on_database_blocks_ignoring_connstring(
    pg_dsn_sync: str, tmp_path: Path
) -> None:
    """Every service on the real database named only by its `database` block (migrations
    asked for there alone), with a `connstring` pointing nowhere beside it."""
    nowhere = "host=clair-database.invalid port=1 connect_timeout=1"
    doc = {
        service: {
            "connstring": nowhere,
            "migrations": False,
            "database": database(pg_dsn_sync, migrations=True),
        }
        for service in SERVICES
    }
    doc["matcher"]["disable_updaters"] = True
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    with clair_server(tmp_path, env={"CLAIR_CONF": str(path)}) as server:
        wait_ready(server, timeout=90)
        log = server.log_text()
    assert "Traceback" not in log
    assert log.count("connstring: ignored; ") == 3


def test_an_unreachable_database_block_is_named_in_the_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    dsn = f"host=127.0.0.1 port={free_port()} user=clair connect_timeout=2"
    config.write_text(
        f"http_listen_addr: 127.0.0.1:{free_port()}\nintrospection_addr: 127.0.0.1:{free_port()}\n"
        "database_startup_timeout: 5s\n"  # long enough to log the first failure
        f"indexer:\n  connstring: host=elsewhere\n  database:\n    name: postgresql\n"
        f"    postgresql:\n      dsn: {dsn}\n"
    )
    result = _run("clair_common.cli.clair", "serve", "--mode", "indexer", "--config", str(config))
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("clair:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"clair: {config}: indexer.database.postgresql.dsn: cannot connect to PostgreSQL"
    )
    # What is only logged while serve waits for the database names the same key.
    logged = [line for line in result.stderr.splitlines() if "cannot connect" in line]
    assert len(logged) == 2, result.stderr
    assert all("indexer.database.postgresql.dsn: cannot connect" in line for line in logged)


async def test_the_database_probe_names_the_database_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The readiness probe's one log line per outage names the key in use."""
    dsn = f"host=127.0.0.1 port={free_port()} user=clair connect_timeout=2"
    cfg = validate_document({"matcher": {"connstring": "host=x", "database": database(dsn)}}, "c")
    monitor = DatabaseMonitor([(dsn_key(cfg, "matcher"), cfg.matcher.dsn)], timeout=2, interval=0.1)
    monitor.start()
    try:
        async with asyncio.timeout(10):
            while monitor.up:  # noqa: ASYNC110 (the monitor offers no event to wait on)
                await asyncio.sleep(0.05)
    finally:
        await monitor.close()
    assert (
        "database unavailable: matcher.database.postgresql.dsn: cannot connect to PostgreSQL"
        in caplog.text
    )
