"""A parsed connection string mapped onto asyncpg, with pgx's meaning where it differs from libpq.

What maps where:
- hosts, ports (lists for multi-host strings), user, password, dbname, passfile, service,
  `target_session_attrs`, `krbsrvname`, `gsslib`: asyncpg's own arguments;
- `connect_timeout` (seconds, 0 = none): asyncpg's per-attempt `timeout`;
- `sslmode`: `disable`/`allow`/`prefer` are handed to asyncpg; `require`, `verify-ca` and
  `verify-full` get a context built here as pgx builds it: `sslrootcert` alone is trusted when
  given, else the system store with `SSL_CERT_FILE`/`SSL_CERT_DIR` (`clair_common.tls`);
  `require` with an `sslrootcert` verifies the chain, as libpq and pgx do; `sslcert`/`sslkey`
  (with `sslpassword`) are the client certificate; `sslnegotiation=direct` is direct TLS;
- `application_name` (else `fallback_application_name`), `options` and every key neither
  libpq nor pgx knows: server run-time parameters;
- `pool_max_conns`/`pool_min_conns`: the pool's size; `pool_max_conn_idle_time`: asyncpg's
  `max_inactive_connection_lifetime`; `statement_cache_capacity`: `statement_cache_size`.
Accepted without effect (asyncpg has no counterpart; documented in the README):
`pool_max_conn_lifetime`, `pool_health_check_period`, libpq's keepalive and GSS options.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clair_common.config.connstring import ConnSettings, ConnStringError, parse_connstring
from clair_common.tls import new_client_context

__all__ = ["ConnectOptions", "connect_options"]

_VERIFYING = ("require", "verify-ca", "verify-full")


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Keyword arguments for `asyncpg.connect`/`create_pool`, and the pool sizing asked for."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    settings: ConnSettings = field(default_factory=ConnSettings)


def _ports(values: list[str]) -> list[int] | int | None:
    numbers = [int(p) if p else 5432 for p in values]
    if not numbers:
        return None
    return numbers[0] if len(numbers) == 1 else numbers


def _tls_context(mode: str, params: Mapping[str, str], env: Mapping[str, str]) -> ssl.SSLContext:
    rootcert = params.get("sslrootcert") or env.get("PGSSLROOTCERT") or ""
    cert = params.get("sslcert") or env.get("PGSSLCERT") or ""
    key = params.get("sslkey") or env.get("PGSSLKEY") or ""
    try:
        if rootcert and rootcert != "system":
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(cafile=rootcert)
        else:
            context = new_client_context()
        if mode == "require" and not rootcert:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.check_hostname = mode == "verify-full"
            context.verify_mode = ssl.CERT_REQUIRED
        if cert:
            password = params.get("sslpassword") or None
            context.load_cert_chain(cert, key or None, password=password)
    except (OSError, ssl.SSLError) as err:
        which = "sslrootcert" if rootcert and not cert else "sslcert/sslkey"
        raise ConnStringError(f"{which}: {err}") from None
    return context


def _ssl_argument(params: Mapping[str, str], env: Mapping[str, str]) -> Any:
    mode = params.get("sslmode") or env.get("PGSSLMODE") or ""
    if mode in _VERIFYING:
        return _tls_context(mode, params, env)
    return mode or None  # asyncpg's default is prefer, as libpq's and pgx's


def connect_options(
    dsn: str | None,
    *,
    application_name: str,
    server_settings: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConnectOptions:
    """Map `dsn` (None or "": libpq's PG* environment alone) onto asyncpg's arguments.

    `server_settings` are forced (a service's `search_path`); `application_name` is used when
    the connection string names none.
    """
    env = os.environ if environ is None else environ
    settings = parse_connstring(dsn or "")
    params = settings.libpq
    kwargs: dict[str, Any] = {}
    hosts = settings.hosts
    if not any(hosts) and params.get("hostaddr"):
        hosts = params["hostaddr"].split(",")
    if any(hosts):
        kwargs["host"] = hosts if len(hosts) > 1 else hosts[0]
    port = _ports(settings.ports)
    if port is not None:
        kwargs["port"] = port
    for ours, theirs in (
        ("user", "user"),
        ("password", "password"),
        ("dbname", "database"),
        ("passfile", "passfile"),
        ("service", "service"),
        ("target_session_attrs", "target_session_attrs"),
        ("krbsrvname", "krbsrvname"),
        ("gsslib", "gsslib"),
    ):
        if params.get(ours):
            kwargs[theirs] = params[ours]
    if settings.pgx.get("servicefile"):
        kwargs["servicefile"] = settings.pgx["servicefile"]
    timeout = int(params.get("connect_timeout") or 0)
    if timeout > 0:
        kwargs["timeout"] = float(timeout)
    ssl_arg = _ssl_argument(params, env)
    if ssl_arg is not None:
        kwargs["ssl"] = ssl_arg
    if params.get("sslnegotiation") == "direct":
        kwargs["direct_tls"] = True
    if "statement_cache_capacity" in settings.pgx:
        kwargs["statement_cache_size"] = int(settings.pgx["statement_cache_capacity"])
    server: dict[str, str] = dict(settings.runtime)
    if params.get("options"):
        server["options"] = params["options"]
    server["application_name"] = (
        params.get("application_name")
        or params.get("fallback_application_name")
        or application_name
    )
    server.update(server_settings or {})
    kwargs["server_settings"] = server
    return ConnectOptions(kwargs=kwargs, settings=settings)
