"""PostgreSQL connection strings as Clair (pgx over libpq's syntax) reads them.

Both of libpq's forms are accepted: keyword/value (`host=db port=5432 password='it\\'s'`) and
URLs (`postgresql://u@h1:5432,h2:5433/db?sslmode=verify-full`). libpq itself (through
psycopg's binding) parses every keyword it knows, so quoting, escapes, percent-decoding and
host lists are exactly libpq's. pgx adds to that syntax, and Clair configs use it:

- `pool_*` keys size and age the pool (pgxpool's `ParseConfig`);
- `statement_cache_capacity`, `description_cache_capacity`, `default_query_exec_mode`;
- any other key is a server run-time parameter sent at connection start (`search_path=x`).

Those keys are taken out before libpq sees the rest, because libpq refuses keys it does not
know. Values libpq only checks when connecting (ports, `sslmode`, ...) are checked here, so a
bad one fails at start-up or in `clairctl check-config`, not at the first query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from urllib.parse import unquote

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from clair_common.config.duration import parse_go_duration

__all__ = [
    "SSL_MODES",
    "TARGET_SESSION_ATTRS",
    "ConnSettings",
    "ConnStringError",
    "PoolSettings",
    "parse_connstring",
]

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
_POOL_INT_KEYS = ("pool_max_conns", "pool_min_conns", "pool_min_idle_conns")
_POOL_DURATION_KEYS = (
    "pool_max_conn_lifetime",
    "pool_max_conn_lifetime_jitter",
    "pool_max_conn_idle_time",
    "pool_health_check_period",
)
# pgx keys that configure the client, neither libpq's nor server parameters.
_PGX_CLIENT_KEYS = frozenset(
    {
        *_POOL_INT_KEYS,
        *_POOL_DURATION_KEYS,
        "statement_cache_capacity",
        "description_cache_capacity",
        "default_query_exec_mode",
        "servicefile",
        "krbspn",
    }
)
_URL_PREFIXES = ("postgresql://", "postgres://")


class ConnStringError(ValueError):
    """A connection string that neither libpq nor pgx would accept; the text says why."""


@dataclass(frozen=True, slots=True)
class PoolSettings:
    max_conns: int | None = None
    min_conns: int | None = None
    max_conn_lifetime: timedelta | None = None
    max_conn_idle_time: timedelta | None = None
    health_check_period: timedelta | None = None


@dataclass(frozen=True, slots=True)
class ConnSettings:
    """A parsed connection string: libpq's keys as libpq decoded them, pgx's client keys, and
    the server run-time parameters."""

    libpq: dict[str, str] = field(default_factory=dict)
    pgx: dict[str, str] = field(default_factory=dict)
    runtime: dict[str, str] = field(default_factory=dict)
    pool: PoolSettings = field(default_factory=PoolSettings)

    @property
    def hosts(self) -> list[str]:
        return self.libpq["host"].split(",") if "host" in self.libpq else []

    @property
    def ports(self) -> list[str]:
        return self.libpq["port"].split(",") if "port" in self.libpq else []


@lru_cache(maxsize=1)
def libpq_keywords() -> frozenset[str]:
    """Every keyword the linked libpq knows."""
    return frozenset(
        option.keyword.decode() for option in pq.Conninfo.get_defaults() if option.keyword
    )


def _keyword_tokens(text: str) -> list[tuple[str, str, str]]:
    """Split libpq keyword/value text into (key, decoded value, raw `key=value` text).

    Grammar as libpq's `conninfo_parse`: whitespace-separated `key = value`; a value is either
    single-quoted or runs to the next unescaped whitespace; backslash escapes the next character
    in both.
    """
    tokens: list[tuple[str, str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return tokens
        start = i
        while i < n and text[i] != "=" and not text[i].isspace():
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            raise ConnStringError(f'missing "=" after "{key}" in connection info string')
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while i < n and text[i] != "'":
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            if i >= n:
                raise ConnStringError("unterminated quoted string in connection info string")
            i += 1
        else:
            while i < n and not text[i].isspace():
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
        tokens.append((key, "".join(value), text[start:i]))


def _split_foreign(text: str) -> tuple[str, dict[str, str]]:
    """The part of `text` for libpq, and the keys libpq does not know (decoded)."""
    known = libpq_keywords()
    foreign: dict[str, str] = {}
    if text.startswith(_URL_PREFIXES):
        base, sep, query = text.partition("?")
        kept: list[str] = []
        for pair in query.split("&") if sep else []:
            key, _, value = pair.partition("=")
            name = unquote(key)
            if name in known:
                kept.append(pair)
            else:
                foreign[name] = unquote(value)
        return (base + "?" + "&".join(kept) if kept else base), foreign
    kept_tokens: list[str] = []
    for key, value, raw in _keyword_tokens(text):
        if key in known:
            kept_tokens.append(raw)
        else:
            foreign[key] = value
    return " ".join(kept_tokens), foreign


def _int_value(key: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConnStringError(f"invalid {key}: {value!r} is not an integer") from None
    if number < minimum:
        raise ConnStringError(f"invalid {key}: {number} is less than {minimum}")
    return number


def _pool_settings(pgx: dict[str, str]) -> PoolSettings:
    durations: dict[str, timedelta] = {}
    for key in _POOL_DURATION_KEYS:
        if key in pgx:
            try:
                durations[key] = parse_go_duration(pgx[key])
            except ValueError as err:
                raise ConnStringError(f"invalid {key}: {err}") from None
    max_conns = min_conns = None
    if "pool_max_conns" in pgx:
        max_conns = _int_value("pool_max_conns", pgx["pool_max_conns"], 1)
    if "pool_min_conns" in pgx:
        min_conns = _int_value("pool_min_conns", pgx["pool_min_conns"], 0)
    if max_conns is not None and min_conns is not None and min_conns > max_conns:
        raise ConnStringError(f"pool_min_conns ({min_conns}) exceeds pool_max_conns ({max_conns})")
    return PoolSettings(
        max_conns=max_conns,
        min_conns=min_conns,
        max_conn_lifetime=durations.get("pool_max_conn_lifetime"),
        max_conn_idle_time=durations.get("pool_max_conn_idle_time"),
        health_check_period=durations.get("pool_health_check_period"),
    )


def _check_libpq_values(params: dict[str, str]) -> None:
    """What libpq checks only when connecting, checked now."""
    if params.get("sslmode", "prefer") not in SSL_MODES:
        raise ConnStringError(f"invalid sslmode value: {params['sslmode']!r}")
    attrs = params.get("target_session_attrs", "any")
    if attrs not in TARGET_SESSION_ATTRS:
        raise ConnStringError(f"invalid target_session_attrs value: {attrs!r}")
    if "connect_timeout" in params:
        _int_value("connect_timeout", params["connect_timeout"], 0)
    hosts = params["host"].split(",") if "host" in params else [""]
    ports = params["port"].split(",") if "port" in params else []
    for port in ports:
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConnStringError(f"invalid port number: {port!r}")
    if len(ports) > 1 and len(ports) != len(hosts):
        raise ConnStringError(f"could not match {len(ports)} port numbers to {len(hosts)} hosts")


def parse_connstring(text: str) -> ConnSettings:
    """Parse a connection string as Clair would; ConnStringError says what is wrong."""
    libpq_text, foreign = _split_foreign(text.strip())
    try:
        params = conninfo_to_dict(libpq_text)
    except psycopg.Error as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConnStringError(message) from None
    libpq = {key: str(value) for key, value in params.items()}
    _check_libpq_values(libpq)
    pgx = {key: value for key, value in foreign.items() if key in _PGX_CLIENT_KEYS}
    runtime = {key: value for key, value in foreign.items() if key not in _PGX_CLIENT_KEYS}
    if "statement_cache_capacity" in pgx:
        _int_value("statement_cache_capacity", pgx["statement_cache_capacity"], 0)
    return ConnSettings(libpq=libpq, pgx=pgx, runtime=runtime, pool=_pool_settings(pgx))
