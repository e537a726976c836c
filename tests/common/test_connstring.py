"""Connection strings as Clair reads them (libpq syntax, pgx extensions), on a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from clair_dev.embedded_pg import SUPERUSER, EmbeddedPostgres

from clair_common.config import Config, ConfigError, validate_for_mode
from clair_common.config.connstring import ConnStringError, parse_connstring
from clair_common.db.locks import AdvisoryLocks
from clair_common.db.pool import DatabaseUnavailable, connect, create_pool
from tests.fixtures.certs import TestCA
from tests.fixtures.server import clair_env, free_port


def keyword_form(url: str, **extra: str) -> str:
    """The fixture's URL DSN rewritten as libpq keyword/value text, values quoted."""
    parts = urlsplit(url)
    fields = {
        "host": parts.hostname or "",
        "port": str(parts.port or 5432),
        "user": unquote(parts.username or ""),
        "dbname": unquote(parts.path.lstrip("/")),
    }
    if parts.password:
        fields["password"] = unquote(parts.password)
    fields.update(extra)
    quoted = (v.replace("\\", "\\\\").replace("'", "\\'") for v in fields.values())
    return " ".join(f"{k}='{v}'" for k, v in zip(fields, quoted, strict=True))


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "libpq"),
    [
        (
            "host=localhost port=5432 user=clair dbname=clair sslmode=disable",
            {"host": "localhost", "port": "5432", "user": "clair", "dbname": "clair"},
        ),
        (r"password='it\'s a \\ secret' user = 'a b'", {"password": "it's a \\ secret"}),
        (r"password=with\ space", {"password": "with space"}),
        ("host=h1,h2 port=5432,5433", {"host": "h1,h2", "port": "5432,5433"}),
        (
            "postgresql://us%40er:p%3Ass@[::1]:5433,db2:5434/clair?sslmode=verify-full",
            {"user": "us@er", "password": "p:ss", "host": "::1,db2", "port": "5433,5434"},
        ),
        ("postgres://db/clair?application_name=a+b", {"application_name": "a+b"}),
    ],
)
def test_libpq_syntax(text: str, libpq: dict[str, str]) -> None:
    parsed = parse_connstring(text).libpq
    assert {k: parsed[k] for k in libpq} == libpq


def test_pgx_pool_and_runtime_keys_are_taken_out() -> None:
    for text in (
        "host=db pool_max_conns=7 pool_min_conns=2 pool_max_conn_lifetime=1h "
        "pool_max_conn_idle_time=90s pool_health_check_period=1m search_path=x",
        "postgresql://db/?pool_max_conns=7&pool_min_conns=2&pool_max_conn_lifetime=1h"
        "&pool_max_conn_idle_time=90s&pool_health_check_period=1m&search_path=x",
    ):
        parsed = parse_connstring(text)
        assert parsed.libpq == {"host": "db"}
        assert parsed.runtime == {"search_path": "x"}
        assert parsed.pool.max_conns == 7
        assert parsed.pool.min_conns == 2
        assert parsed.pool.max_conn_lifetime == timedelta(hours=1)
        assert parsed.pool.max_conn_idle_time == timedelta(seconds=90)
        assert parsed.pool.health_check_period == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host=db sslmode=bogus", "invalid sslmode value: 'bogus'"),
        ("host=db port=http", "invalid port number: 'http'"),
        ("host=a,b,c port=1,2", "could not match 2 port numbers to 3 hosts"),
        ("host=db target_session_attrs=primaryish", "invalid target_session_attrs value"),
        ("host=db connect_timeout=soon", "invalid connect_timeout: 'soon' is not an integer"),
        ("host=db pool_max_conns=0", "invalid pool_max_conns: 0 is less than 1"),
        ("host=db pool_max_conns=2 pool_min_conns=3", "pool_min_conns (3) exceeds"),
        (
            "host=db pool_max_conn_lifetime=1y",
            'invalid pool_max_conn_lifetime: invalid duration "1y"',
        ),
        ("host=db dbname", 'missing "=" after "dbname"'),
        ("host='db", "unterminated quoted string"),
        ("postgresql://db:port/", "invalid"),
    ],
)
def test_bad_connstrings(text: str, message: str) -> None:
    with pytest.raises(ConnStringError) as info:
        parse_connstring(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_mode_validation_names_the_key() -> None:
    cfg = Config.model_validate(
        {"indexer": {"connstring": "host=db sslmode=sure"}, "matcher": {"connstring": "x"}}
    )
    with pytest.raises(ConfigError) as info:
        validate_for_mode(cfg, "indexer", "c.yaml")
    assert str(info.value) == "c.yaml: indexer.connstring: invalid sslmode value: 'sure'"
    with pytest.raises(ConfigError) as info:
        validate_for_mode(cfg, "combo", "c.yaml")
    assert len(info.value.problems) == 2


# -- against the real server -----------------------------------------------------------------


async def test_keyword_form_with_pgx_keys_reaches_the_server(pg_dsn: str) -> None:
    # A dead first host, then the real one: libpq's (and asyncpg's) multi-host fallback.
    parts = urlsplit(pg_dsn)
    text = keyword_form(
        pg_dsn,
        host=f"{parts.hostname},{parts.hostname}",
        port=f"{free_port()},{parts.port}",
        application_name="clair it's me",
        connect_timeout="5",
        target_session_attrs="read-write",
        pool_max_conns="3",
        pool_min_conns="0",
        pool_max_conn_idle_time="5m",
        statement_timeout="4321",
    )
    pool = await create_pool(text, schema="indexer", application_name="libindex")
    try:
        assert pool.get_max_size() == 3
        row = await pool.fetchrow(
            "SELECT current_setting('application_name') AS app,"
            " current_setting('statement_timeout') AS st, current_setting('search_path') AS sp"
        )
        assert row is not None
        assert dict(row) == {"app": "clair it's me", "st": "4321ms", "sp": "indexer,public"}
    finally:
        await pool.close()
    # The URL form with a pgx key in its query.
    url = pg_dsn + ("&" if "?" in pg_dsn else "?") + "pool_max_conns=2&search_path=x"
    conn = await connect(url, application_name="url", key="matcher.connstring")
    try:
        assert await conn.fetchval("SELECT current_setting('search_path')") == "x"
    finally:
        await conn.close()


async def test_unreachable_database_is_one_line_naming_the_key() -> None:
    text = f"host=127.0.0.1 port={free_port()} user=clair dbname=clair connect_timeout=3"
    with pytest.raises(DatabaseUnavailable) as info:
        await create_pool(text, schema="matcher", application_name="libvuln")
    message = str(info.value)
    assert message.startswith("matcher.connstring: cannot connect to PostgreSQL: ")
    assert "\n" not in message
    locks = AdvisoryLocks(text)
    with pytest.raises(DatabaseUnavailable):
        async with locks.try_hold("x"):
            pass


# -- TLS to PostgreSQL -----------------------------------------------------------------------


class TLSServer:
    def __init__(self, pg: EmbeddedPostgres, ca: TestCA, ca_dir: Path) -> None:
        self.pg, self.ca, self.ca_dir = pg, ca, ca_dir

    def conninfo(self, host: str, **extra: str) -> str:
        fields = {"host": host, "port": str(self.pg.port), "user": SUPERUSER, "dbname": "postgres"}
        fields.update(extra)
        return " ".join(f"{k}={v}" for k, v in fields.items())


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TLSServer]:
    """A PostgreSQL cluster serving TLS with a certificate for `localhost` only, signed by a
    throwaway CA whose certificate is a `.cert` file alone in its directory."""
    workdir = Path(tempfile.mkdtemp(prefix="clair-test-pgtls-"))
    try:
        plain = EmbeddedPostgres(workdir, fast=True)
        plain.start()  # initdb; the certificate must sit in the data directory it made
        plain.stop()
        ca_dir = workdir / "ca"
        ca_dir.mkdir()
        ca = TestCA(ca_dir / "extra_ca_cert_database.cert")
        issued = ca.issue(plain.pgdata, "server", hosts=("localhost",))
        owner = plain.pgdata.stat()
        for path in (issued.cert, issued.key):
            os.chown(path, owner.st_uid, owner.st_gid)
        settings = {"ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key"}
        with EmbeddedPostgres(workdir, fast=True, settings=settings) as pg:
            yield TLSServer(pg, ca, ca_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _uses_tls(text: str) -> bool:
    conn = await connect(text, application_name="tls-test", key="indexer.connstring")
    try:
        return bool(await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    finally:
        await conn.close()


async def test_verify_full_with_sslrootcert(tls_server: TLSServer) -> None:
    text = tls_server.conninfo(
        "localhost", sslmode="verify-full", sslrootcert=str(tls_server.ca.cert_path)
    )
    assert await _uses_tls(text)


async def test_verify_full_trusts_ssl_cert_dir_like_go(
    tls_server: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = tls_server.conninfo("localhost", sslmode="verify-full")
    monkeypatch.setenv("HOME", str(tls_server.ca_dir))  # no ~/.postgresql/root.crt to fall on
    with pytest.raises(DatabaseUnavailable) as info:
        await _uses_tls(text)
    assert "certificate verify failed" in str(info.value)
    monkeypatch.setenv("SSL_CERT_DIR", f"/nonexistent:{tls_server.ca_dir}")
    assert await _uses_tls(text)


async def test_verify_ca_skips_the_name_verify_full_checks_it(tls_server: TLSServer) -> None:
    root = str(tls_server.ca.cert_path)
    assert await _uses_tls(tls_server.conninfo("127.0.0.1", sslmode="verify-ca", sslrootcert=root))
    with pytest.raises(DatabaseUnavailable) as info:
        await _uses_tls(tls_server.conninfo("127.0.0.1", sslmode="verify-full", sslrootcert=root))
    assert "indexer.connstring: cannot connect to PostgreSQL" in str(info.value)


async def test_require_encrypts_without_verifying(tls_server: TLSServer) -> None:
    assert await _uses_tls(tls_server.conninfo("127.0.0.1", sslmode="require"))
    assert not await _uses_tls(tls_server.conninfo("127.0.0.1", sslmode="disable"))


async def test_missing_sslrootcert_names_the_file(tls_server: TLSServer) -> None:
    text = tls_server.conninfo("localhost", sslmode="verify-full", sslrootcert="/nonexistent.pem")
    with pytest.raises(DatabaseUnavailable) as info:
        await _uses_tls(text)
    assert str(info.value).startswith("indexer.connstring: sslrootcert: ")


# -- the commands ----------------------------------------------------------------------------


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        env=clair_env({"PYTHONUNBUFFERED": "1", **(env or {})}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_parses_connstrings_as_serve_does(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "indexer:\n  connstring: host=db pool_max_conns=4 sslmode=verify-full\n"
        'matcher:\n  connstring: "host=db port=5432,5433"\n'
    )
    result = _run("clair_common.cli.clairctl", "check-config", str(config))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{config}: matcher.connstring: could not match 2 port numbers to 1 hosts"
    ]
    serve = _run("clair_common.cli.clair", "serve", "--mode", "matcher", "--config", str(config))
    assert serve.returncode == 2
    assert f"{config}: matcher.connstring: could not match 2 port numbers" in serve.stderr
    assert "Traceback" not in serve.stderr


def test_serve_with_an_unreachable_database_fails_in_one_line(tmp_path: Path) -> None:
    """Once `database_startup_timeout` has passed (by default it waits for ever)."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"http_listen_addr: 127.0.0.1:{free_port()}\nintrospection_addr: 127.0.0.1:{free_port()}\n"
        "database_startup_timeout: 1s\n"
        f"indexer:\n  connstring: host=127.0.0.1 port={free_port()} user=clair connect_timeout=2\n"
    )
    result = _run("clair_common.cli.clair", "serve", "--mode", "indexer", "--config", str(config))
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("clair:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"clair: {config}: indexer.connstring: cannot connect to PostgreSQL")
    assert "Traceback" not in result.stderr
