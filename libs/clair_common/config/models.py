"""Clair v4's config schema (`clair/config/*.go`) with Clair's defaults applied on validation.

Defaults are applied regardless of mode (Clair applies them per mode; the values are the same),
so a validated `Config` never needs a second look at "zero means default".
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ModelWrapValidatorHandler, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from clair_common.config.base import TLS, ConfigModel, check_host_port, config_problem
from clair_common.config.database import DatabaseSection
from clair_common.config.duration import GoDuration
from clair_common.config.environment import (
    DELIMITER,
    PREFIX,
    ClairEnvSource,
    current_request,
)
from clair_common.config.notifier import Notifier
from clair_common.config.removed import strip_removed_keys
from clair_common.config.telemetry import Metrics, Trace

__all__ = [
    "DEFAULT_HTTP_LISTEN_ADDR",
    "DEFAULT_INTROSPECTION_ADDR",
    "DEFAULT_MATCHER_PERIOD",
    "DEFAULT_UPDATER_SETS",
    "DEFAULT_UPDATE_RETENTION",
    "PSK",
    "UNLIMITED",
    "Auth",
    "Config",
    "Indexer",
    "LogLevel",
    "Matcher",
    "Matchers",
    "ScannerConfig",
    "SharedConfig",
    "Updaters",
]

DEFAULT_HTTP_LISTEN_ADDR = ":6060"
DEFAULT_INTROSPECTION_ADDR = ":8089"
DEFAULT_MATCHER_PERIOD = timedelta(hours=6)
DEFAULT_UPDATE_RETENTION = 10
# ~0.3 MiB a 400-package report: a few hundred reports.
DEFAULT_REPORT_CACHE_BYTES = 64 * 1024 * 1024
# Candidate rows shared between reports of one generation of update operations.
DEFAULT_CANDIDATE_CACHE_ROWS = 500_000
DEFAULT_LAYER_SCAN_CONCURRENCY = 10
# Request limits (not in Clair, whose Go server has none): generous for real clients.
DEFAULT_HTTP_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_HTTP_HEADER_TIMEOUT = timedelta(seconds=10)
DEFAULT_SHUTDOWN_GRACE_PERIOD = timedelta(seconds=10)
DEFAULT_MAX_MANIFEST_LAYERS = 1000
DEFAULT_DATABASE_CONNECT_TIMEOUT = timedelta(seconds=10)
# Long enough for the matcher's biggest statements (VACUUM after an update, GC deletes).
DEFAULT_DATABASE_STATEMENT_TIMEOUT = timedelta(minutes=5)
DEFAULT_LAYER_FETCH_TIMEOUT = timedelta(minutes=30)
DEFAULT_LAYER_MIN_RATE = 1024  # bytes/s
DEFAULT_UPDATER_TIMEOUT = timedelta(hours=1)
DEFAULT_UPDATER_MIN_RATE = 100  # bytes/s: a feed trickling a byte every few seconds fails
DEFAULT_RATE_WINDOW = timedelta(minutes=1)
DEFAULT_SCANLOCK_RETRY = 1
DEFAULT_LAYER_CACHE_BYTES = 10 << 30
DEFAULT_UPDATER_SETS: tuple[str, ...] = (
    "alpine",
    "aws",
    "clair.cvss",
    "debian",
    "oracle",
    "osv",
    "photon",
    "rhel-vex",
    "suse",
    "ubuntu",
)
UNLIMITED = -1
"""`indexer.index_report_request_concurrency` after validation: no limit on in-flight requests."""

LogLevel = Literal["info", "debug-color", "debug", "warn", "error", "fatal", "panic"]


def _usable_cpus() -> int:
    # Go's GOMAXPROCS defaults to the CPUs this process may run on.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class ScannerConfig(ConfigModel):
    """Per-scanner options, passed verbatim to the named scanner's `configure`."""

    package: dict[str, Any] = Field(default_factory=dict)
    dist: dict[str, Any] = Field(default_factory=dict)
    repo: dict[str, Any] = Field(default_factory=dict)


class Indexer(DatabaseSection):
    # Seconds between scan-lock polls; kept for compatibility, effectively unused.
    scanlock_retry: int = DEFAULT_SCANLOCK_RETRY
    layer_scan_concurrency: int = DEFAULT_LAYER_SCAN_CONCURRENCY
    # 0 becomes usable CPUs x 4; a negative value becomes UNLIMITED (-1).
    index_report_request_concurrency: int = 0
    # Not in Clair: index requests downloading from one layer host (host:port of the layer
    # URI) at once, past which that host's requests get 429; 0 becomes half of
    # index_report_request_concurrency (rounded up), a negative value UNLIMITED.
    index_report_host_concurrency: int = 0
    # Not in Clair: layer downloads from one host at once (the others wait without holding a
    # scan slot); 0 becomes half of layer_scan_concurrency (rounded up), negative UNLIMITED.
    layer_host_concurrency: int = 0
    # Outbound connections only to loopback/private addresses.
    airgap: bool = False
    scanner: ScannerConfig = Field(default_factory=ScannerConfig)
    # Not in Clair: manifests with more layers are refused with 400; 0 or less: no limit.
    max_manifest_layers: int = DEFAULT_MAX_MANIFEST_LAYERS
    # Not in Clair: one layer's download (retries included) fails after this; 0: never.
    layer_fetch_timeout: GoDuration = DEFAULT_LAYER_FETCH_TIMEOUT
    # Not in Clair: a layer host sending fewer bytes/s than this over a whole
    # `layer_rate_window` (waiting for its answer included) fails the layer; 0: no floor.
    layer_min_rate: int = DEFAULT_LAYER_MIN_RATE
    layer_rate_window: GoDuration = DEFAULT_RATE_WINDOW
    # Not in Clair (which fetches anything): when set, layers are fetched only from these
    # host names (`*.example.com` too) or networks (CIDR), redirects included.
    layer_fetch_allow: list[str] = Field(default_factory=list)
    # Not in Clair: refuse loopback, link-local (cloud metadata), unspecified and multicast
    # layer addresses. With either policy key set, fetch errors do not echo remote answers.
    layer_fetch_deny_internal: bool = False
    # Not in Clair (claircore spools layers under the temp directory): where fetched layers are
    # cached ("" is `$TMPDIR/clair-layers`; `CLAIR_LAYER_CACHE` sets it too) and the bytes
    # they may take before the least recently used are dropped.
    layer_cache_dir: str = ""
    layer_cache_bytes: int = Field(default=DEFAULT_LAYER_CACHE_BYTES, ge=1)

    @model_validator(mode="after")
    def _apply_defaults(self) -> Indexer:
        if self.scanlock_retry < 1:
            self.scanlock_retry = DEFAULT_SCANLOCK_RETRY
        if self.layer_scan_concurrency < 1:
            self.layer_scan_concurrency = DEFAULT_LAYER_SCAN_CONCURRENCY
        if self.index_report_request_concurrency == 0:
            self.index_report_request_concurrency = _usable_cpus() * 4
        elif self.index_report_request_concurrency < 0:
            self.index_report_request_concurrency = UNLIMITED
        if self.index_report_host_concurrency == 0:
            requests = self.index_report_request_concurrency
            self.index_report_host_concurrency = UNLIMITED if requests < 0 else (requests + 1) // 2
        elif self.index_report_host_concurrency < 0:
            self.index_report_host_concurrency = UNLIMITED
        if self.layer_host_concurrency == 0:
            self.layer_host_concurrency = (self.layer_scan_concurrency + 1) // 2
        elif self.layer_host_concurrency < 0:
            self.layer_host_concurrency = UNLIMITED
        return self

    @property
    def layer_cache_path(self) -> Path:
        return Path(self.layer_cache_dir or Path(tempfile.gettempdir()) / "clair-layers")

    @property
    def index_report_request_limit(self) -> int | None:
        """Maximum concurrent index requests, or None for no limit."""
        limit = self.index_report_request_concurrency
        return None if limit < 0 else limit


class Matcher(DatabaseSection):
    # Remote indexer URL; required in matcher mode, ignored in combo mode.
    indexer_addr: str = ""
    # How often updaters run; anything under a minute becomes the default.
    period: GoDuration = DEFAULT_MATCHER_PERIOD
    # Update operations kept per updater; 0 after validation means GC is off.
    update_retention: int = DEFAULT_UPDATE_RETENTION
    # Deprecated and ignored: set pool_max_conns in the connstring.
    max_conn_pool: int = 0
    # Cache-Control max-age for vulnerability reports; zero means "same as period".
    cache_age: GoDuration = timedelta(0)
    disable_updaters: bool = False
    disable_enrichment: bool = False
    # Not in Clair: bytes of serialized vulnerability reports kept by ETag; 0 turns it off.
    report_cache_bytes: int = DEFAULT_REPORT_CACHE_BYTES
    # Not in Clair: candidate rows kept between reports (shared packages); 0 turns it off.
    candidate_cache_rows: int = DEFAULT_CANDIDATE_CACHE_ROWS
    # Not in Clair: one updater's whole run (fetch, parse, store) is cut off after this; 0: never.
    updater_timeout: GoDuration = DEFAULT_UPDATER_TIMEOUT
    # Not in Clair: a feed download slower than this many bytes/s over a whole
    # `updater_rate_window` is given up; 0 turns the floor off.
    updater_min_rate: int = DEFAULT_UPDATER_MIN_RATE
    updater_rate_window: GoDuration = DEFAULT_RATE_WINDOW

    @model_validator(mode="after")
    def _apply_defaults(self) -> Matcher:
        if self.period < timedelta(minutes=1):
            self.period = DEFAULT_MATCHER_PERIOD
        if self.update_retention < 0:
            self.update_retention = 0
        elif self.update_retention < 2:
            # Two are needed to diff; Clair turns 0 and 1 into the default.
            self.update_retention = DEFAULT_UPDATE_RETENTION
        if self.cache_age <= timedelta(0):
            self.cache_age = self.period
        self.report_cache_bytes = max(self.report_cache_bytes, 0)
        self.candidate_cache_rows = max(self.candidate_cache_rows, 0)
        return self


class Matchers(ConfigModel):
    # None means every registered matcher.
    names: list[str] | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class Updaters(ConfigModel):
    # Absent means all default sets; an explicit empty list runs no updaters.
    sets: list[str] = Field(default_factory=lambda: list(DEFAULT_UPDATER_SETS))
    # Keyed by set name (configures the factory) or updater name (configures the updater).
    config: dict[str, Any] = Field(default_factory=dict)
    # Parsed for compatibility; unused.
    filter: str = ""


class PSK(ConfigModel):
    """Pre-shared HS256 key for service-to-service JWTs; `key` is standard base64."""

    key: str
    iss: list[str] = Field(default_factory=list)

    @field_validator("key")
    @classmethod
    def _decodes(cls, value: str) -> str:
        if not _decode_key(value):
            raise config_problem("key is empty")
        return value

    @property
    def key_bytes(self) -> bytes:
        """The decoded secret used to sign and verify tokens."""
        return _decode_key(self.key)


def _decode_key(text: str) -> bytes:
    # Go's StdEncoding: padding required, embedded CR/LF ignored.
    cleaned = text.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise config_problem("key is not valid base64") from None


class Auth(ConfigModel):
    psk: PSK | None = None
    # Removed from Clair; present only to explain the error.
    keyserver: Any = None

    @field_validator("keyserver")
    @classmethod
    def _removed(cls, value: Any) -> Any:
        raise config_problem("removed: keyserver authentication is no longer supported; use psk")


def _listen_addr(value: Any, default: str) -> Any:
    return default if value == "" else value


class SharedConfig(ConfigModel):
    """The keys every service reads, whatever its mode."""

    http_listen_addr: str = DEFAULT_HTTP_LISTEN_ADDR
    introspection_addr: str = DEFAULT_INTROSPECTION_ADDR
    log_level: LogLevel = "info"
    tls: TLS | None = None
    auth: Auth = Field(default_factory=Auth)
    trace: Trace = Field(default_factory=Trace)
    metrics: Metrics = Field(default_factory=Metrics)
    # Not in Clair: request bodies past this many bytes get 413; 0 or less: no limit.
    http_max_body_bytes: int = DEFAULT_HTTP_MAX_BODY_BYTES
    # Not in Clair: a connection must send its first request's headers within this time.
    http_header_timeout: GoDuration = DEFAULT_HTTP_HEADER_TIMEOUT
    # Not in Clair: after SIGTERM, in-flight requests get this long to finish.
    shutdown_grace_period: GoDuration = DEFAULT_SHUTDOWN_GRACE_PERIOD
    # Not in Clair: connecting to PostgreSQL gives up after this; every statement after
    # `database_statement_timeout` (0: no limit). While the database does not answer,
    # database routes answer 503 and /readyz 503.
    database_connect_timeout: GoDuration = DEFAULT_DATABASE_CONNECT_TIMEOUT
    database_statement_timeout: GoDuration = DEFAULT_DATABASE_STATEMENT_TIMEOUT
    # Not in Clair: how long `clair serve` keeps retrying to start while its database does not
    # answer (/healthz 200, /readyz 503 meanwhile) before it exits; 0: until it answers.
    database_startup_timeout: GoDuration = timedelta(0)

    @field_validator("http_listen_addr", mode="before")
    @classmethod
    def _default_http(cls, value: Any) -> Any:
        return _listen_addr(value, DEFAULT_HTTP_LISTEN_ADDR)

    @field_validator("introspection_addr", mode="before")
    @classmethod
    def _default_introspection(cls, value: Any) -> Any:
        return _listen_addr(value, DEFAULT_INTROSPECTION_ADDR)

    @field_validator("http_listen_addr", "introspection_addr")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return check_host_port(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        # Clair matches levels case-insensitively; unset is info.
        if isinstance(value, str):
            return value.lower() or "info"
        return value


class Config(BaseSettings, SharedConfig):
    """A whole Clair config file, as pydantic settings: the file's document (with drop-ins, given
    as init values) under the `CLAIR_<SECTION>__<KEY>` environment (environment.py), over
    Clair's defaults. The environment is the one `environment.loading` names (none outside it).
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        validate_default=False,
        env_prefix=PREFIX,
        env_nested_delimiter=DELIMITER,
        case_sensitive=True,
    )

    indexer: Indexer = Field(default_factory=Indexer)
    matcher: Matcher = Field(default_factory=Matcher)
    matchers: Matchers = Field(default_factory=Matchers)
    updaters: Updaters = Field(default_factory=Updaters)
    notifier: Notifier = Field(default_factory=Notifier)
    # Warnings for keys of earlier Clair releases found in the file and ignored (removed.py).
    _removed_keys: list[str] = PrivateAttr(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: the environment over the file's document (the init values).
        return ClairEnvSource(settings_cls, current_request()), init_settings

    @model_validator(mode="wrap")
    @classmethod
    def _without_removed_keys(cls, data: Any, handler: ModelWrapValidatorHandler[Config]) -> Config:
        """Keys earlier Clair releases knew are dropped before validation, kept as warnings."""
        removed: list[str] = []
        if isinstance(data, dict):
            data, removed = strip_removed_keys(data)
        cfg = handler(data)
        cfg._removed_keys = removed
        return cfg

    @property
    def removed_keys(self) -> list[str]:
        return list(self._removed_keys)

    @model_validator(mode="after")
    def _cross_section_defaults(self) -> Config:
        if self.matcher.disable_updaters:
            self.updaters.sets = []
        return self

    @property
    def shared(self) -> SharedConfig:
        """The shared keys alone (already validated, so not re-checked)."""
        return SharedConfig.model_construct(
            **{name: getattr(self, name) for name in SharedConfig.model_fields}
        )
