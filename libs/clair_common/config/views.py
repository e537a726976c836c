"""What each service is handed, mode checks, database-DSN precedence and lints.

Each service receives only its own section(s) plus the `SharedConfig` keys. In combo mode all
three views come from one `Config` and every `*_addr` key is ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, overload

from clair_common.config.connstring import ConnStringError, parse_connstring
from clair_common.config.errors import ConfigError
from clair_common.config.models import Config, Indexer, Matcher, Matchers, SharedConfig, Updaters
from clair_common.config.notifier import Notifier
from clair_common.config.telemetry import Jaeger

__all__ = [
    "PG_ENVIRONMENT",
    "IndexerView",
    "MatcherView",
    "Mode",
    "NotifierView",
    "connstring_problems",
    "lint_config",
    "resolve_connstring",
    "service_view",
    "services_of",
    "validate_for_mode",
]

Mode = Literal["combo", "indexer", "matcher", "notifier"]

# libpq variables that select or authenticate a server; asyncpg reads these when the DSN is empty.
PG_ENVIRONMENT = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGTARGETSESSIONATTRS",
)


@dataclass(frozen=True, slots=True)
class IndexerView:
    shared: SharedConfig
    indexer: Indexer


@dataclass(frozen=True, slots=True)
class MatcherView:
    shared: SharedConfig
    matcher: Matcher
    matchers: Matchers
    updaters: Updaters


@dataclass(frozen=True, slots=True)
class NotifierView:
    shared: SharedConfig
    notifier: Notifier


@overload
def service_view(cfg: Config, service: Literal["indexer"]) -> IndexerView: ...
@overload
def service_view(cfg: Config, service: Literal["matcher"]) -> MatcherView: ...
@overload
def service_view(cfg: Config, service: Literal["notifier"]) -> NotifierView: ...
@overload
def service_view(cfg: Config, service: str) -> IndexerView | MatcherView | NotifierView: ...
def service_view(cfg: Config, service: str) -> IndexerView | MatcherView | NotifierView:
    """The part of the config one service may read."""
    if service == "indexer":
        return IndexerView(cfg.shared, cfg.indexer)
    if service == "matcher":
        return MatcherView(cfg.shared, cfg.matcher, cfg.matchers, cfg.updaters)
    if service == "notifier":
        return NotifierView(cfg.shared, cfg.notifier)
    raise ValueError(f"unknown service {service!r}")


def resolve_connstring(value: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Which database to use: the configured DSN if any; "" to use libpq's PG* environment
    (asyncpg honours it when the DSN is empty); None when neither is given, so the caller may
    start an embedded database."""
    if value:
        return value
    env = os.environ if environ is None else environ
    if any(env.get(name) for name in PG_ENVIRONMENT):
        return ""
    return None


def services_of(mode: Mode) -> tuple[Literal["indexer", "matcher", "notifier"], ...]:
    """The sections a mode reads (combo: all three; the notifier's only when it runs)."""
    return ("indexer", "matcher", "notifier") if mode == "combo" else (mode,)


def connstring_problems(cfg: Config, mode: Mode, source: str = "config") -> list[str]:
    """Each connection string of the mode's services, parsed as `clair serve` will use it."""
    problems: list[str] = []
    for name in services_of(mode):
        section: Indexer | Matcher | Notifier = getattr(cfg, name)
        try:
            parse_connstring(section.dsn)
        except ConnStringError as err:
            problems.append(f"{source}: {name}.{section.dsn_key}: {err}")
    return problems


def validate_for_mode(cfg: Config, mode: Mode, source: str = "config") -> None:
    """Checks that depend on the mode (Clair's `Validate`): remote addresses for split services,
    and the connection strings of the services the mode runs."""
    problems = connstring_problems(cfg, mode, source)
    if mode == "matcher" and not cfg.matcher.indexer_addr:
        problems.append(f"{source}: matcher.indexer_addr: required in matcher mode")
    if mode == "notifier":
        for key in ("indexer_addr", "matcher_addr"):
            if not getattr(cfg.notifier, key):
                problems.append(f"{source}: notifier.{key}: required in notifier mode")
        if cfg.notifier.delivery is None:
            problems.append(f"{source}: notifier: notifier mode requires a delivery mechanism")
    if problems:
        raise ConfigError(problems)


def lint_config(cfg: Config) -> list[str]:
    """Clair-style warnings (logged at start-up, never fatal), as `key.path: message`."""
    warnings: list[str] = cfg.removed_keys
    if cfg.log_level in ("fatal", "panic"):
        warnings.append('log_level: "fatal" and "panic" levels result in almost no logging')
    if cfg.tls is not None and cfg.tls.root_ca:
        warnings.append("tls.root_ca: deprecated; add the CA to the system trust store")
    if cfg.auth.psk is not None and not cfg.auth.psk.iss:
        warnings.append("auth.psk.iss: no extra issuers; only clair-intraservice is accepted")
    if cfg.trace.name == "jaeger":
        warnings.append('trace.name: trace provider "jaeger" is deprecated; migrate to "otlp"')
    if cfg.trace.jaeger != Jaeger():
        warnings.append("trace.jaeger: removed from Clair and ignored; use trace.otlp instead")
    if cfg.matcher.period < timedelta(hours=6):
        warnings.append("matcher.period: updater period is very aggressive")
    if cfg.matcher.cache_age < cfg.matcher.period / 2:
        warnings.append("matcher.cache_age: expiry very low: may result in increased workload")
    if cfg.matcher.update_retention == 0:
        warnings.append("matcher.update_retention: update garbage collection is off")
    for name in ("indexer", "matcher", "notifier"):
        section: Indexer | Matcher | Notifier = getattr(cfg, name)
        if section.database is not None and section.connstring:
            warnings.append(f"{name}.connstring: ignored; {name}.database is used")
    if cfg.matcher.max_conn_pool:
        warnings.append("matcher.max_conn_pool: ignored; set pool_max_conns in the connstring")
    notifier = cfg.notifier
    mechanisms = [m for m in (notifier.webhook, notifier.amqp, notifier.stomp) if m is not None]
    if len(mechanisms) > 1:
        warnings.append(f"notifier: multiple delivery mechanisms; only {notifier.delivery} is used")
    if notifier.webhook is not None and notifier.webhook.signed:
        warnings.append("notifier.webhook.signed: deprecated; deliveries are signed with auth.psk")
    if notifier.disable_summary:
        warnings.append("notifier.disable_summary: significantly increases memory consumption")
    return warnings
